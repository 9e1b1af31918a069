"""TF Serving's warmup file: assets.extra/tf_serving_warmup_requests in a model version.

A TFRecord file of PredictionLog records. The real tensorflow_model_server and this
project's server both replay it before a version serves, so the first user request does
not pay for graph initialisation, and a model that cannot answer them never serves.
"""
from __future__ import annotations

import os
from typing import Sequence

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from serving.server import signature_calls
from serving.signature_names import DEFAULT_SIGNATURE

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


def write_warmup_requests(version_path: str, serialized_examples: Sequence[bytes], model_name: str,
                          batch_size: int = 8, signature_name: str = DEFAULT_SIGNATURE,
                          input_key: str = "examples") -> str:
    """Write predict requests of `serialized_examples` (tf.Examples, already serialized by
    whoever knows the model's features), `batch_size` a request, into the version; returns
    the file's path. The requests go to `signature_name`'s input `input_key`."""
    path = os.path.join(version_path, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for start in range(0, min(len(serialized_examples), MAX_WARMUP_RECORDS * batch_size), batch_size):
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                name=model_name, signature_name=signature_name))
            batch = list(serialized_examples[start:start + batch_size])
            request.inputs[input_key].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def replay_warmup_requests(model, version_path: str) -> int:
    """Run each warmup request against `model`; raises on the first one that fails."""
    path = os.path.join(version_path, WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if entry.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: record {count}: only predict_log warmup records are supported")
        request = entry.predict_log.request
        _, function = signature_calls.signature(model, request.model_spec.signature_name, rest=False)
        signature_calls.run(function, {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()})
        count += 1
    return count
