"""A gRPC client for any TF Serving endpoint (the real tensorflow_model_server or serving/server/).

Rows (CSV rows or dicts with the same keys) go as tf.Examples built with the feature types
the client is given (see request_encoding.py). `predict` calls a predict signature
(serving_default) and returns one output per row; `classify` and `regress` call TF
Serving's Classify and Regress APIs and return, per row, (class label, score) pairs or the
regressed value. `predict_with_ids` also gives each row's request id (serving/request_ids.py).
"""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.clients.call_defaults import (
    CLASSIFY_SIGNATURE,
    EXAMPLES_INPUT,
    PREDICT_SIGNATURE,
    REGRESS_SIGNATURE,
    pick_output,
)
from serving.clients.request_encoding import FeatureTypes, row_to_example, serialized_examples
from serving.request_ids import HEADER, Predictions, header_value, new_id, row_ids
from serving.tensor_protos import to_ndarray, to_tensor_proto

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class GrpcClient:
    """One channel reused for every call; deadlines; retries while the server is UNAVAILABLE.

    `feature_types` ({name: "int" | "float" | "bytes"}) says how rows become tf.Examples.
    """

    def __init__(self, target: str, model_name: str, feature_types: FeatureTypes, timeout: float = 10.0,
                 retries: int = 3, version: int | None = None, version_label: str | None = None):
        self.model_name, self.feature_types = model_name, dict(feature_types)
        self.timeout, self.retries = timeout, retries
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

    def _call(self, method, request, request_id: str | None = None):
        """(response, call) of a call; a retry sends the same request id."""
        metadata = ((HEADER, request_id),) if request_id else None
        for attempt in range(self.retries + 1):
            try:
                return method.with_call(request, timeout=self.timeout, metadata=metadata)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(min(2.0, 0.1 * 2 ** attempt))
        raise AssertionError("unreachable")

    def predict(self, rows: Sequence[Mapping[str, str]], signature: str = PREDICT_SIGNATURE,
                output_key: str | None = None, input_key: str = EXAMPLES_INPUT,
                request_ids: Sequence[str] | str | None = None) -> np.ndarray:
        """One value per row: the signature's output `output_key`, or its only output when
        None. The serialized tf.Examples go to the signature's input `input_key`.
        `request_ids`: one id (a str) for the request, or one per row, sent as x-request-id."""
        return self._predict(rows, signature, output_key, input_key, header_value(request_ids, len(rows)))[0]

    def predict_with_ids(self, rows: Sequence[Mapping[str, str]], request_ids: Sequence[str] | str | None = None,
                         signature: str = PREDICT_SIGNATURE, output_key: str | None = None,
                         input_key: str = EXAMPLES_INPUT) -> Predictions:
        """predict's values with each row's request id, as the server echoed and logged it. Without
        `request_ids` the client makes one, so a server that echoes none still gives the ids sent."""
        sent = header_value(request_ids, len(rows)) or new_id()
        values, echo = self._predict(rows, signature, output_key, input_key, sent)
        return Predictions(values, row_ids(echo or sent, len(rows))[1])

    def _predict(self, rows: Sequence[Mapping[str, str]], signature: str, output_key: str | None, input_key: str,
                 request_id: str | None) -> tuple[np.ndarray, str | None]:
        """(one value per row, the x-request-id the server echoed or None)."""
        request = predict_pb2.PredictRequest(model_spec=self._spec(signature))
        examples = np.array(serialized_examples(rows, self.feature_types), dtype=object)
        request.inputs[input_key].CopyFrom(to_tensor_proto(examples))
        response, call = self._call(self.stub.Predict, request, request_id)
        echo = next((value for key, value in call.trailing_metadata() or () if key == HEADER), None)
        values = to_ndarray(response.outputs[pick_output(response.outputs, output_key, signature)]).reshape(-1)
        return values, echo

    def classify(self, rows: Sequence[Mapping[str, str]],
                 signature: str = CLASSIFY_SIGNATURE) -> list[list[tuple[str, float]]]:
        request = classification_pb2.ClassificationRequest(model_spec=self._spec(signature))
        request.input.example_list.examples.extend(row_to_example(row, self.feature_types) for row in rows)
        result = self._call(self.stub.Classify, request)[0].result
        return [[(item.label, item.score) for item in classes.classes] for classes in result.classifications]

    def regress(self, rows: Sequence[Mapping[str, str]], signature: str = REGRESS_SIGNATURE) -> np.ndarray:
        request = regression_pb2.RegressionRequest(model_spec=self._spec(signature))
        request.input.example_list.examples.extend(row_to_example(row, self.feature_types) for row in rows)
        result = self._call(self.stub.Regress, request)[0].result
        return np.array([item.value for item in result.regressions], dtype=np.float32)

    def close(self) -> None:
        self.channel.close()
