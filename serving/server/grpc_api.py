"""TF Serving's gRPC services on the official tensorflow-serving-api stubs."""
from __future__ import annotations

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.server import classify_regress, signature_calls
from serving.server.batching import Batcher
from serving.server.errors import ServingError, invalid, not_found
from serving.server.metrics import ServerMetrics
from serving.server.model_config import entries_from_proto
from serving.server.model_store import ModelStore
from serving.server.request_log import RequestLog
from serving.tensor_protos import to_ndarray, to_tensor_proto

STATE_NUMBERS = {"UNKNOWN": 0, "START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def _abort(context: grpc.ServicerContext, error: ServingError):
    """For the handlers that run on the server's thread pool."""
    context.abort(error.code, error.message[:1024])


async def _abort_on_loop(context: grpc.aio.ServicerContext, error: ServingError):
    await context.abort(error.code, error.message[:1024])


def _store(models: dict[str, ModelStore], spec) -> ModelStore:
    if not spec.name:
        raise invalid("ModelSpec has no name specified.")
    if spec.name not in models:
        raise not_found(f"Servable not found for request: Latest({spec.name})")
    return models[spec.name]


def _version_and_label(spec) -> tuple[int | None, str | None]:
    version = spec.version.value if spec.HasField("version") else None
    return version, spec.version_label or None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify and Regress are coroutines on the server's asyncio loop: a waiting
    request costs no thread, so under load many of them join one batch (the thread-per-call
    server managed half the throughput). GetModelMetadata runs on the server's thread pool."""

    def __init__(self, models: dict[str, ModelStore], metrics: ServerMetrics | None = None,
                 request_log: RequestLog | None = None, batcher: Batcher | None = None,
                 method_name_check: bool = False):
        self.models, self.metrics, self.request_log = models, metrics or ServerMetrics(), request_log
        self.batcher, self.method_name_check = batcher, method_name_check

    async def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        with self.metrics.request(request.model_spec.name, "predict", "GRPC") as info:
            try:
                return await self._predict(request, info)
            except ServingError as error:
                info["status"] = error.code.name
                await _abort_on_loop(context, error)

    async def _predict(self, request: predict_pb2.PredictRequest, info: dict) -> predict_pb2.PredictResponse:
        store = _store(self.models, request.model_spec)
        version, model, signature_defs = store.resolve_with_signature_defs(*_version_and_label(request.model_spec))
        info["version"] = str(version)
        name, function = signature_calls.signature(model, request.model_spec.signature_name, rest=False)
        if self.method_name_check:
            signature_calls.check_predict_method_name(signature_defs[name])
        inputs = {key: to_ndarray(proto) for key, proto in request.inputs.items()}
        outputs = await signature_calls.run_on_loop(function, inputs, self.batcher)
        if self.request_log:
            self.request_log.record(store.name, version, name, inputs, outputs)
        wanted = list(request.output_filter) or list(outputs)
        for alias in wanted:
            if alias not in outputs:
                raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be "
                              f"in the set {{{','.join(sorted(outputs))}}}.")
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = store.name, name
        response.model_spec.version.value = version
        for alias in wanted:
            response.outputs[alias].CopyFrom(to_tensor_proto(outputs[alias]))
        return response

    async def Classify(self, request: classification_pb2.ClassificationRequest,
                       context) -> classification_pb2.ClassificationResponse:
        return await self._classify_or_regress(request, context, classify_regress.CLASSIFY,
                                               classification_pb2.ClassificationResponse())

    async def Regress(self, request: regression_pb2.RegressionRequest,
                      context) -> regression_pb2.RegressionResponse:
        return await self._classify_or_regress(request, context, classify_regress.REGRESS,
                                               regression_pb2.RegressionResponse())

    async def _classify_or_regress(self, request, context, method: str, response):
        with self.metrics.request(request.model_spec.name, method, "GRPC") as info:
            try:
                store = _store(self.models, request.model_spec)
                version, model, signature_defs = store.resolve_with_signature_defs(
                    *_version_and_label(request.model_spec))
                info["version"] = str(version)
                name, inputs = classify_regress.prepare(signature_defs, request.model_spec.signature_name, method,
                                                        request.input, self.method_name_check)
                outputs = await signature_calls.run_on_loop(model.signatures[name], inputs, self.batcher)
                result = classify_regress.result(method, outputs, len(inputs[classify_regress.INPUTS]))
            except ServingError as error:
                info["status"] = error.code.name
                await _abort_on_loop(context, error)
        if self.request_log:
            self.request_log.record_classify_or_regress(method, store.name, version, name, request.input, result)
        response.model_spec.name, response.model_spec.signature_name = store.name, name
        response.model_spec.version.value = version
        response.result.CopyFrom(result)
        return response

    def GetModelMetadata(self, request, context) -> get_model_metadata_pb2.GetModelMetadataResponse:
        try:
            store = _store(self.models, request.model_spec)
            if not request.metadata_field:
                raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise invalid(f"Metadata field {field} is not supported")
            version, signature_defs = store.signature_defs(*_version_and_label(request.model_spec))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = store.name
            response.model_spec.version.value = version
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for name, definition in signature_defs.items():
                signature_map.signature_def[name].CopyFrom(definition)
            response.metadata["signature_def"].Pack(signature_map)
            return response
        except ServingError as error:
            _abort(context, error)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, models: dict[str, ModelStore], apply_config=None):
        """`apply_config(entries)` replaces the served models on HandleReloadConfigRequest."""
        self.models, self.apply_config = models, apply_config

    def HandleReloadConfigRequest(self, request, context) -> model_management_pb2.ReloadConfigResponse:
        response = model_management_pb2.ReloadConfigResponse()
        try:
            if self.apply_config is None:
                raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "this server cannot reload its config")
            self.apply_config(entries_from_proto(request.config))
        except ServingError as error:
            response.status.error_code = error.code.value[0]
            response.status.error_message = error.message
            _abort(context, error)
        return response

    def GetModelStatus(self, request, context) -> get_model_status_pb2.GetModelStatusResponse:
        try:
            if request.model_spec.name not in self.models:
                raise not_found(f"Could not find any versions of model {request.model_spec.name}")
            version = request.model_spec.version.value if request.model_spec.HasField("version") else None
            response = get_model_status_pb2.GetModelStatusResponse()
            for state in self.models[request.model_spec.name].statuses(version):
                entry = response.model_version_status.add(version=state.version, state=STATE_NUMBERS[state.state])
                if state.error:
                    entry.status.error_code = 2  # UNKNOWN
                    entry.status.error_message = state.error
            return response
        except ServingError as error:
            _abort(context, error)
