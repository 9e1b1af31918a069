"""A sampled log of served requests, as TFRecord files of PredictionLog records.

The same record type TF Serving's own request logging writes, so tooling (and this
project's training/serving skew check) reads either. Predict requests to serving_default
carry serialized tf.Examples, those to serving_raw one tensor per raw feature; classify and
regress requests carry their tf.Examples in an Input, and are logged with their results.
"""
from __future__ import annotations

import os
import random
import threading
from typing import Iterator

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, prediction_log_pb2, regression_pb2

from serving.server import classify_regress


class RequestLog:
    """Appends a sampled share of requests (with their responses) to one TFRecord file."""

    def __init__(self, path: str, sample_rate: float = 1.0, seed: int | None = None):
        if not 0 < sample_rate <= 1:
            raise ValueError(f"request log sample rate must be in (0, 1], not {sample_rate}")
        self.path, self.sample_rate = path, sample_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        if os.path.dirname(path):
            tf.io.gfile.makedirs(os.path.dirname(path))
        self._writer = tf.io.TFRecordWriter(path)

    def _sampled(self) -> bool:
        with self._lock:
            return self._random.random() < self.sample_rate

    def _write(self, entry: prediction_log_pb2.PredictionLog) -> None:
        with self._lock:
            self._writer.write(entry.SerializeToString())
            self._writer.flush()

    def record(self, model: str, version: int, signature: str, inputs: dict[str, np.ndarray],
               outputs: dict[str, np.ndarray]) -> bool:
        """Log one served predict request (if sampled); True when it was written."""
        if not self._sampled():
            return False
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model, signature_name=signature))
        request.model_spec.version.value = version
        response = predict_pb2.PredictResponse(model_spec=request.model_spec)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        self._write(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request, response=response)))
        return True

    def record_classify_or_regress(self, method: str, model: str, version: int, signature: str,
                                   request_input, result) -> bool:
        """Log one served classify or regress request (if sampled) with its result."""
        if not self._sampled():
            return False
        spec = model_pb2.ModelSpec(name=model, signature_name=signature)
        spec.version.value = version
        if method == classify_regress.CLASSIFY:
            entry = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
                request=classification_pb2.ClassificationRequest(model_spec=spec, input=request_input),
                response=classification_pb2.ClassificationResponse(model_spec=spec, result=result)))
        else:
            entry = prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(
                request=regression_pb2.RegressionRequest(model_spec=spec, input=request_input),
                response=regression_pb2.RegressionResponse(model_spec=spec, result=result)))
        self._write(entry)
        return True

    def close(self) -> None:
        with self._lock:
            self._writer.close()


def read_logs(pattern: str) -> Iterator[prediction_log_pb2.PredictionLog]:
    for path in sorted(tf.io.gfile.glob(pattern)):
        for record in tf.data.TFRecordDataset(path):
            yield prediction_log_pb2.PredictionLog.FromString(record.numpy())


def read_predict_logs(pattern: str) -> Iterator[prediction_log_pb2.PredictLog]:
    for entry in read_logs(pattern):
        if entry.WhichOneof("log_type") == "predict_log":
            yield entry.predict_log


def logged_examples(pattern: str) -> Iterator[tf.train.Example]:
    """The tf.Examples clients sent, one per served row: serving_default predict requests,
    and classify and regress requests (a context merged into each example, as served)."""
    for entry in read_logs(pattern):
        kind = entry.WhichOneof("log_type")
        if kind == "predict_log":
            inputs = entry.predict_log.request.inputs
            serialized = tf.make_ndarray(inputs["examples"]).reshape(-1) if "examples" in inputs else []
        elif kind in ("classify_log", "regress_log"):
            serialized = classify_regress.serialized_examples(getattr(entry, kind).request.input)
        else:
            continue
        for row in serialized:
            yield tf.train.Example.FromString(row)
