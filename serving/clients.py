"""Clients for any TF Serving endpoint (the real tensorflow_model_server or serving/server.py).

Both send raw CSV rows (or feature dicts with the same keys) as tf.Examples. `predict`
calls serving_default and returns the tip probability per row; `classify` and `regress`
call TF Serving's Classify and Regress APIs on the classification and regression
signatures and return, per row, (class label, score) pairs or the regressed value.
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
from tensorflow_serving.apis import (
    classification_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from models.signatures import CLASSIFICATION_SIGNATURE, OUTPUT_KEY, REGRESSION_SIGNATURE
from serving.examples import row_to_example
from serving.tensor_protos import to_ndarray, to_tensor_proto

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _serialized(rows: Iterable[dict[str, str]]) -> list[bytes]:
    return [row_to_example(row).SerializeToString() for row in rows]


def _json_examples(rows: Iterable[dict[str, str]]) -> list[dict]:
    """tf.Examples as the REST Classify/Regress APIs take them: ints stay ints (int64
    features), floats stay floats, and bytes go as text or, when not UTF-8, {"b64": ...}."""
    def text_or_b64(value: bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}

    examples = []
    for row in rows:
        example = {}
        for name, feature in row_to_example(row).features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            example[name] = [text_or_b64(v) for v in values] if kind == "bytes_list" else values
        examples.append(example)
    return examples


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

    def _spec(self, signature: str) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature)
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label:
            spec.version_label = self.version_label
        return spec

    def _call(self, method, request):
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(min(2.0, 0.1 * 2 ** attempt))
        raise AssertionError("unreachable")

    def predict(self, rows: Sequence[dict[str, str]]) -> np.ndarray:
        request = predict_pb2.PredictRequest(model_spec=self._spec("serving_default"))
        request.inputs["examples"].CopyFrom(to_tensor_proto(np.array(_serialized(rows), dtype=object)))
        response = self._call(self.stub.Predict, request)
        return to_ndarray(response.outputs[OUTPUT_KEY]).reshape(-1)

    def classify(self, rows: Sequence[dict[str, str]],
                 signature: str = CLASSIFICATION_SIGNATURE) -> list[list[tuple[str, float]]]:
        request = classification_pb2.ClassificationRequest(model_spec=self._spec(signature))
        request.input.example_list.examples.extend(row_to_example(row) for row in rows)
        result = self._call(self.stub.Classify, request).result
        return [[(item.label, item.score) for item in classes.classes] for classes in result.classifications]

    def regress(self, rows: Sequence[dict[str, str]], signature: str = REGRESSION_SIGNATURE) -> np.ndarray:
        request = regression_pb2.RegressionRequest(model_spec=self._spec(signature))
        request.input.example_list.examples.extend(row_to_example(row) for row in rows)
        result = self._call(self.stub.Regress, request).result
        return np.array([item.value for item in result.regressions], dtype=np.float32)

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
        self.path = base.path.rstrip("/") + path  # + ":predict", ":classify" or ":regress"
        self.url = f"{base.scheme}://{base.netloc}{self.path}"
        self.pool = urllib3.connection_from_url(f"{base.scheme}://{base.netloc}", maxsize=32,
                                                timeout=urllib3.Timeout(total=timeout), retries=False)

    def _post(self, verb: str, body: dict) -> dict:
        reply = self.pool.urlopen("POST", f"{self.path}:{verb}", body=json.dumps(body),
                                  headers={"Content-Type": "application/json"})
        if reply.status != 200:
            raise RuntimeError(f"{self.url}:{verb} answered {reply.status}: "
                               f"{reply.data[:500].decode('utf-8', 'replace')}")
        return json.loads(reply.data)

    def predict(self, rows: Sequence[dict[str, str]]) -> np.ndarray:
        instances = [{"b64": base64.b64encode(example).decode()} for example in _serialized(rows)]
        reply = self._post("predict", {"instances": instances})
        return np.array(reply["predictions"], dtype=np.float32).reshape(-1)

    def classify(self, rows: Sequence[dict[str, str]],
                 signature: str = CLASSIFICATION_SIGNATURE) -> list[list[tuple[str, float]]]:
        reply = self._post("classify", {"signature_name": signature, "examples": _json_examples(rows)})
        return [[(label, float(score)) for label, score in classes] for classes in reply["results"]]

    def regress(self, rows: Sequence[dict[str, str]], signature: str = REGRESSION_SIGNATURE) -> np.ndarray:
        reply = self._post("regress", {"signature_name": signature, "examples": _json_examples(rows)})
        return np.array(reply["results"], dtype=np.float32)

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
