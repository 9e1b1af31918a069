"""A sampled log of served predict requests, as TFRecord files of PredictionLog records.

The same record type TF Serving's own request logging writes, so tooling (and this
project's training/serving skew check) reads either. Requests to serving_default carry
serialized tf.Examples; requests to serving_raw carry one tensor per raw feature.
"""
from __future__ import annotations

import os
import random
import threading
from typing import Iterator

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2


class RequestLog:
    """Appends a sampled share of predict requests (with their responses) to one TFRecord file."""

    def __init__(self, path: str, sample_rate: float = 1.0, seed: int | None = None):
        if not 0 < sample_rate <= 1:
            raise ValueError(f"request log sample rate must be in (0, 1], not {sample_rate}")
        self.path, self.sample_rate = path, sample_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        if os.path.dirname(path):
            tf.io.gfile.makedirs(os.path.dirname(path))
        self._writer = tf.io.TFRecordWriter(path)

    def record(self, model: str, version: int, signature: str, inputs: dict[str, np.ndarray],
               outputs: dict[str, np.ndarray]) -> bool:
        """Log one served request (if sampled); True when it was written."""
        with self._lock:
            if self._random.random() >= self.sample_rate:
                return False
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model, signature_name=signature))
        request.model_spec.version.value = version
        response = predict_pb2.PredictResponse(model_spec=request.model_spec)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        with self._lock:
            entry = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request, response=response))
            self._writer.write(entry.SerializeToString())
            self._writer.flush()
            return True

    def close(self) -> None:
        with self._lock:
            self._writer.close()


def read_predict_logs(pattern: str) -> Iterator[prediction_log_pb2.PredictLog]:
    for path in sorted(tf.io.gfile.glob(pattern)):
        for record in tf.data.TFRecordDataset(path):
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if entry.WhichOneof("log_type") == "predict_log":
                yield entry.predict_log


def logged_examples(pattern: str) -> Iterator[tf.train.Example]:
    """The tf.Examples clients sent, one per served row, from serving_default requests."""
    for log in read_predict_logs(pattern):
        if "examples" in log.request.inputs:
            for serialized in tf.make_ndarray(log.request.inputs["examples"]).reshape(-1):
                yield tf.train.Example.FromString(serialized)
