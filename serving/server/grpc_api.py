"""TF Serving's gRPC services on the official tensorflow-serving-api stubs. Predict, Classify and
Regress answer with the call's `x-request-id` in the trailing metadata (serving/request_ids.py),
which the request log keeps with each row, and with the version that answered (`x-model-version`)
and, for a routed call, its arm (`x-model-arm`; serving/server/routing.py)."""
from __future__ import annotations

import ipaddress
import os
import time
import urllib.parse

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

from serving import request_ids
from serving.server import classify_regress, signature_calls
from serving.server.answered_calls import predict_answered
from serving.server.batching import Batcher
from serving.server.errors import ServingError, as_invalid, invalid, not_found
from serving.server.metrics import ServerMetrics
from serving.server.model_config import entries_from_proto
from serving.server.model_store import ModelStore
from serving.server.request_log import RequestLog
from serving.server.routing import ARM_HEADER, VERSION_HEADER, Router
from serving.server.shadow import ShadowRunner
from serving.tensor_protos import DEFAULT_MAX_BYTES, TensorProtoError, to_ndarray, to_tensor_proto

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


def _tensors(protos, max_bytes: int) -> dict:
    """A request's input arrays; TF Serving's INVALID_ARGUMENT `tensor parsing error: <alias>`, with the
    reason added, for a proto that is no tensor or would outgrow `max_bytes` once filled in."""
    inputs = {}
    for alias, proto in protos.items():
        try:
            inputs[alias] = to_ndarray(proto, max_bytes)
        except TensorProtoError as error:
            raise invalid(f"tensor parsing error: {alias} ({error})") from None
    return inputs


def peer_is_local(peer: str) -> bool:
    """Whether a gRPC peer (context.peer(): `ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`, `unix:...`) is
    this machine's loopback or a UNIX socket."""
    kind, _, address = peer.partition(":")
    if kind in ("unix", "unix-abstract"):
        return True
    if kind not in ("ipv4", "ipv6"):
        return False
    host = urllib.parse.unquote(address).rsplit(":", 1)[0].strip("[]")  # ipv6 peers may come %-encoded
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def _resolved(path: str) -> str | None:
    """A base path with links and `..` resolved (None for a URL with `..`: it cannot be resolved here)."""
    if "://" in path:
        return None if ".." in path.split("/") else path.rstrip("/")
    return os.path.realpath(path)


def path_is_inside(path: str, roots: list[str]) -> bool:
    resolved = _resolved(path)
    if resolved is None:
        return False
    for root in filter(None, map(_resolved, roots)):
        if resolved == root or resolved.startswith(root.rstrip("/") + "/"):
            return True
    return False


def _request_id(context: grpc.aio.ServicerContext) -> str:
    """The request id to echo: the call's `x-request-id` metadata (several entries are one list), or a
    new one; INVALID_ARGUMENT for a bad one. Set as trailing metadata at once, so errors carry it too."""
    sent = [value for key, value in context.invocation_metadata() or () if key == request_ids.HEADER]
    echo = as_invalid(request_ids.check_header, ",".join(sent))
    context.set_trailing_metadata(((request_ids.HEADER, echo),))
    return echo


def _version_and_label(spec) -> tuple[int | None, str | None]:
    version = spec.version.value if spec.HasField("version") else None
    return version, spec.version_label or None


def _metadata_value(context: grpc.aio.ServicerContext):
    """header(name) for the router: the call's first metadata value under `name`, or None."""
    metadata = context.invocation_metadata() or ()
    return lambda name: next((value for key, value in metadata if key == name), None)


def _set_answer_metadata(context: grpc.aio.ServicerContext, echo: str, arm: str, version: int | None) -> None:
    """Trailing metadata: the request id always, the arm once routed, the version on success."""
    trailing = [(request_ids.HEADER, echo)]
    if arm:
        trailing.append((ARM_HEADER, arm))
    if version is not None:
        trailing.append((VERSION_HEADER, str(version)))
    context.set_trailing_metadata(tuple(trailing))


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify and Regress are coroutines on the server's asyncio loop: a waiting
    request costs no thread, so under load many of them join one batch (the thread-per-call
    server managed half the throughput). GetModelMetadata runs on the server's thread pool."""

    def __init__(self, models: dict[str, ModelStore], metrics: ServerMetrics | None = None,
                 request_log: RequestLog | None = None, batcher: Batcher | None = None,
                 method_name_check: bool = False, max_tensor_bytes: int = DEFAULT_MAX_BYTES,
                 router: Router | None = None, shadow: ShadowRunner | None = None):
        """`router`: the routing table (None: nothing is routed); `shadow` runs the shadow calls it names."""
        self.models, self.metrics, self.request_log = models, metrics or ServerMetrics(), request_log
        self.batcher, self.method_name_check = batcher, method_name_check
        self.max_tensor_bytes = max_tensor_bytes
        self.router, self.shadow = router or Router(), shadow

    def _resolve(self, context, store: ModelStore, spec, echo: str, info: dict) -> tuple[int, object, object]:
        """The version a call goes to (routed when it names none), noted for the metrics and metadata."""
        routed = self.router.resolve(store, *_version_and_label(spec), _metadata_value(context))
        info["version"], info["arm"] = str(routed.version), routed.arm
        if routed.arm:  # errors from here on carry the arm too
            _set_answer_metadata(context, echo, routed.arm, None)
        return routed.version, routed.model, routed.signature_defs

    async def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        with self.metrics.request(request.model_spec.name, "predict", "GRPC") as info:
            try:
                return await self._predict(request, context, info)
            except ServingError as error:
                info["status"] = error.code.name
                await _abort_on_loop(context, error)

    async def _predict(self, request: predict_pb2.PredictRequest, context,
                       info: dict) -> predict_pb2.PredictResponse:
        echo = _request_id(context)
        store = _store(self.models, request.model_spec)
        version, model, signature_defs = self._resolve(context, store, request.model_spec, echo, info)
        name, function = signature_calls.signature(model, request.model_spec.signature_name, rest=False)
        if self.method_name_check:
            signature_calls.check_predict_method_name(signature_defs[name])
        inputs = _tensors(request.inputs, self.max_tensor_bytes)
        outputs = await signature_calls.run_on_loop(function, inputs, self.batcher)
        # Counted once the model took the inputs: its own complaints about them come first.
        ids = as_invalid(request_ids.row_ids, echo, signature_calls.row_count(inputs))[1]
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
        predict_answered(store, version, name, inputs, outputs, request_ids=ids, info=info,
                         version_label=request.model_spec.version_label or None, metrics=self.metrics,
                         request_log=self.request_log, router=self.router, shadow=self.shadow)
        _set_answer_metadata(context, echo, info["arm"], version)
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
                echo = _request_id(context)
                store = _store(self.models, request.model_spec)
                label = request.model_spec.version_label or None
                version, model, signature_defs = self._resolve(context, store, request.model_spec, echo, info)
                name, inputs = classify_regress.prepare(signature_defs, request.model_spec.signature_name, method,
                                                        request.input, self.method_name_check)
                outputs = await signature_calls.run_on_loop(model.signatures[name], inputs, self.batcher)
                result = classify_regress.result(method, outputs, len(inputs[classify_regress.INPUTS]))
                ids = as_invalid(request_ids.row_ids, echo, len(inputs[classify_regress.INPUTS]))[1]
            except ServingError as error:
                info["status"] = error.code.name
                await _abort_on_loop(context, error)
        if self.request_log:
            self.request_log.record_classify_or_regress(method, store.name, version, name, request.input, result,
                                                        request_ids=ids, version_label=label, arm=info["arm"],
                                                        latency_seconds=time.perf_counter() - info["started"])
        _set_answer_metadata(context, echo, info["arm"], version)
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
    def __init__(self, models: dict[str, ModelStore], apply_config=None, reload_roots: list[str] | None = None,
                 allow_remote_reload: bool = False):
        """`apply_config(entries)` replaces the served models on HandleReloadConfigRequest; unlike TF
        Serving, only from loopback peers (unless `allow_remote_reload`) and only for base paths
        inside `reload_roots` (None: any path)."""
        self.models, self.apply_config = models, apply_config
        self.reload_roots, self.allow_remote_reload = reload_roots, allow_remote_reload

    def check_reload_peer(self, peer: str) -> None:
        """PERMISSION_DENIED for a reload from another host (`peer` as context.peer() gives it)."""
        if not self.allow_remote_reload and not peer_is_local(peer):
            raise ServingError(grpc.StatusCode.PERMISSION_DENIED,
                               f"HandleReloadConfigRequest is only accepted from this machine's loopback, not from "
                               f"{peer}; start the server with --allow_remote_reload to accept it from other hosts")

    def check_reload_paths(self, entries) -> None:
        """PERMISSION_DENIED for a reload that would load models from outside the allowed folders."""
        if self.reload_roots is None:
            return
        for entry in entries:
            if not path_is_inside(entry.base_path, self.reload_roots):
                raise ServingError(grpc.StatusCode.PERMISSION_DENIED,
                                   f"model {entry.name}: base_path {entry.base_path} is outside the folders this "
                                   f"server loads models from ({', '.join(self.reload_roots)}); add its folder "
                                   "with --model_config_root")

    def HandleReloadConfigRequest(self, request, context) -> model_management_pb2.ReloadConfigResponse:
        response = model_management_pb2.ReloadConfigResponse()
        try:
            if self.apply_config is None:
                raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "this server cannot reload its config")
            self.check_reload_peer(context.peer())  # before the request is looked at
            entries = entries_from_proto(request.config)
            self.check_reload_paths(entries)
            self.apply_config(entries)
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
