"""Clients for any TF Serving endpoint (the real tensorflow_model_server or serving/server.py).

Both send raw CSV rows (or feature dicts with the same keys) as serialized tf.Examples to
the model's serving_default signature and return the tip probability per row.
"""
from __future__ import annotations

import base64
import json
import random
import time
import urllib.parse
from typing import Iterable, Sequence

import grpc
import numpy as np
import urllib3
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from models.signatures import OUTPUT_KEY
from serving.examples import row_to_example
from serving.tensor_protos import to_ndarray, to_tensor_proto

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _serialized(rows: Iterable[dict[str, str]]) -> list[bytes]:
    return [row_to_example(row).SerializeToString() for row in rows]


class GrpcClient:
    """One channel reused for every call; deadlines; retries while the server is UNAVAILABLE."""

    def __init__(self, target: str, model_name: str, timeout: float = 10.0, retries: int = 3,
                 version: int | None = None, version_label: str | None = None):
        self.model_name, self.timeout, self.retries = model_name, timeout, retries
        self.version, self.version_label = version, version_label
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def predict(self, rows: Sequence[dict[str, str]]) -> np.ndarray:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
            name=self.model_name, signature_name="serving_default"))
        if self.version is not None:
            request.model_spec.version.value = self.version
        elif self.version_label:
            request.model_spec.version_label = self.version_label
        request.inputs["examples"].CopyFrom(to_tensor_proto(np.array(_serialized(rows), dtype=object)))
        for attempt in range(self.retries + 1):
            try:
                response = self.stub.Predict(request, timeout=self.timeout)
                return to_ndarray(response.outputs[OUTPUT_KEY]).reshape(-1)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(min(2.0, 0.1 * 2 ** attempt))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.channel.close()


class RestClient:
    """Pooled keep-alive HTTP connections; examples travel base64-encoded as {"b64": ...}.

    Talks to urllib3's connection pool directly: requests' per-call machinery (sessions,
    hooks, adapters) cost more CPU than the server's whole REST handling.
    """

    def __init__(self, base_url: str, model_name: str, timeout: float = 10.0,
                 version: int | None = None, version_label: str | None = None):
        path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
        if version is not None:
            path += f"/versions/{version}"
        elif version_label:
            path += f"/labels/{urllib.parse.quote(version_label, safe='')}"
        base = urllib.parse.urlsplit(base_url)
        self.path = base.path.rstrip("/") + path + ":predict"
        self.url = f"{base.scheme}://{base.netloc}{self.path}"
        self.pool = urllib3.connection_from_url(f"{base.scheme}://{base.netloc}", maxsize=32,
                                                timeout=urllib3.Timeout(total=timeout), retries=False)

    def predict(self, rows: Sequence[dict[str, str]]) -> np.ndarray:
        instances = [{"b64": base64.b64encode(example).decode()} for example in _serialized(rows)]
        reply = self.pool.urlopen("POST", self.path, body=json.dumps({"instances": instances}),
                                  headers={"Content-Type": "application/json"})
        if reply.status != 200:
            raise RuntimeError(f"{self.url} answered {reply.status}: {reply.data[:500].decode('utf-8', 'replace')}")
        return np.array(json.loads(reply.data)["predictions"], dtype=np.float32).reshape(-1)

    def close(self) -> None:
        self.pool.close()


class TrafficSplitClient:
    """A/B and canary traffic: each call goes to one version label, picked by weight.

    `clients` maps a label (e.g. "stable", "canary") to a client already bound to that
    label; the server's per-version metrics then show how each version does.
    """

    def __init__(self, clients: dict[str, GrpcClient | RestClient], weights: dict[str, float], seed: int | None = None):
        if set(clients) != set(weights) or any(w < 0 for w in weights.values()) or not sum(weights.values()):
            raise ValueError("give a non-negative weight, not all zero, for each label's client")
        self.clients, self.labels = clients, list(weights)
        self.weights = [weights[label] for label in self.labels]
        self._random = random.Random(seed)

    def predict(self, rows: Sequence[dict[str, str]]) -> tuple[str, np.ndarray]:
        """(label the request went to, probabilities)."""
        label = self._random.choices(self.labels, self.weights)[0]
        return label, self.clients[label].predict(rows)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
