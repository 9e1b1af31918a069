"""ServabilityCheck: the candidate must load and answer real requests in our model server.

TFX's InfraValidator needs Docker (or Kubernetes) to start tensorflow_model_server; neither
is here. This component does the same job with serving/server/, which speaks the same
REST and gRPC API: it loads a copy of the candidate with warmup requests built from
evaluation examples, sends those examples (without their label, as clients do) over gRPC
and REST, and compares the answers with the model called in-process. Its InfraBlessing
carries the copy (`stamped_model/`, TFX's own layout for InfraValidator's
`make_warmup`), so the pushed version holds `assets.extra/tf_serving_warmup_requests` and
the real tensorflow_model_server warms up with the same requests.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from tfx.types import artifact_utils

from models import features as F
from models.signatures import OUTPUT_KEY
from pipeline import artifacts

# How many evaluation examples become warmup requests and test requests.
NUM_EXAMPLES = 64
# Served and in-process answers must agree to this (float32 through JSON and protos).
TOLERANCE = 1e-5
BLESSED_FILE, NOT_BLESSED_FILE = "INFRA_BLESSED", "INFRA_NOT_BLESSED"
# Custom properties of the InfraBlessing; Pusher reads `blessed` and `has_model`.
REPORT_PROPERTY = "servability_report"


def eval_rows(examples, limit: int = NUM_EXAMPLES) -> list[dict[str, str]]:
    """The first `limit` evaluation examples as raw CSV-like rows, without the label."""
    pattern = os.path.join(artifact_utils.get_split_uri([examples], artifacts.EVAL_SPLIT), "*")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no evaluation examples under {pattern}")
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit):
        example = tf.train.Example.FromString(record.numpy())
        row = {}
        for feature in F.FEATURES:
            values = example.features.feature[feature.name]
            kind = values.WhichOneof("kind")
            listed = list(getattr(values, kind).value) if kind else []
            if not listed:
                row[feature.name] = ""
            elif feature.dtype == tf.string:
                row[feature.name] = listed[0].decode()
            else:
                row[feature.name] = repr(listed[0])
        rows.append(row)
    return rows


def serialized_examples(rows: list[dict[str, str]]) -> list[bytes]:
    """The rows as serialized tf.Examples of the model's raw features, as clients send them."""
    from serving.clients.request_encoding import serialized_examples as encode

    return encode(rows, F.feature_types())


def check_servable(version_path: str, rows: list[dict[str, str]], model_name: str) -> list[str]:
    """Problems found serving `version_path` on loopback; empty when it serves correctly."""
    # Imported here: the server stack (aiohttp, gRPC services) is only needed by this check.
    from serving.clients import GrpcClient, RestClient
    from serving.server.model_server import ModelServer
    from serving.server.model_store import AVAILABLE, ModelStore

    try:
        loaded = tf.saved_model.load(version_path)
        expected = loaded.signatures[artifacts.SERVING_DEFAULT](examples=tf.constant(
            serialized_examples(rows)))[OUTPUT_KEY].numpy().reshape(-1)
    except Exception as error:  # any failure here is a finding, not a crash
        return [f"in-process serving_default call failed: {_short(error)}"]
    base = tempfile.mkdtemp(prefix="servability-")
    os.symlink(os.path.abspath(version_path), os.path.join(base, "1"))
    server = ModelServer({model_name: ModelStore(model_name, base, poll_seconds=0)})
    problems: list[str] = []
    try:
        server.start()
        status = server.models[model_name].statuses_or_empty()
        if not status or status[0].state != AVAILABLE:
            detail = status[0].error if status else "no version found"
            return [f"the model server did not load the model (warmup replays requests built from "
                    f"evaluation examples): {_short(detail)}"]
        calls = {
            "gRPC Predict serving_default": lambda: GrpcClient(
                f"127.0.0.1:{server.grpc_port}", model_name, F.feature_types(), timeout=30, retries=0).predict(
                rows, output_key=OUTPUT_KEY),
            "REST predict serving_default (b64 tf.Examples)": lambda: RestClient(
                f"http://127.0.0.1:{server.rest_port}", model_name, F.feature_types(), timeout=30).predict(
                rows, output_key=OUTPUT_KEY),
            "REST predict serving_raw (named features)": lambda: _rest_raw(
                server.rest_port, model_name, rows),
        }
        for name, call in calls.items():
            try:
                served = np.asarray(call(), dtype=np.float32).reshape(-1)
            except Exception as error:
                problems.append(f"{name} failed: {_short(error)}")
                continue
            if served.shape != expected.shape or not np.allclose(served, expected, atol=TOLERANCE):
                worst = (float(np.max(np.abs(served - expected))) if served.shape == expected.shape
                         else f"shape {served.shape} != {expected.shape}")
                problems.append(f"{name} answered differently from the in-process model (max difference {worst})")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return problems


def _rest_raw(port: int, model_name: str, rows: list[dict[str, str]]) -> np.ndarray:
    import requests

    from serving.clients.request_encoding import rows_to_named_features

    named = rows_to_named_features(rows, F.feature_types(), {feature.name: feature.default for feature in F.FEATURES})
    reply = requests.post(f"http://127.0.0.1:{port}/v1/models/{model_name}:predict", timeout=30,
                          json={"signature_name": artifacts.SERVING_RAW, "inputs": named})
    if reply.status_code != 200:
        raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:300]}")
    return np.array(reply.json()["outputs"])


def _short(error) -> str:
    text = " ".join(str(error).split())
    return text[:400] + ("..." if len(text) > 400 else "")
