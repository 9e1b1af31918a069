"""TF Serving's REST API (/v1/models/...) on aiohttp: model status, metadata, predict,
classify and regress. Predict, classify and regress answer with the request's `x-request-id`
(serving/request_ids.py), which the request log keeps with each row, and with the version that
answered (`x-model-version`) and, for a routed request, its arm (`x-model-arm`;
serving/server/routing.py)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.parse

from aiohttp import web
from google.protobuf import json_format

from serving import request_ids
from serving.server import classify_regress, json_input, json_output, signature_calls
from serving.server.answered_calls import predict_answered
from serving.server.batching import Batcher
from serving.server.errors import ServingError, as_invalid, invalid, not_found
from serving.server.metrics import ServerMetrics
from serving.server.model_store import ModelStore
from serving.server.request_log import RequestLog
from serving.server.routing import ARM_HEADER, VERSION_HEADER, Router
from serving.server.shadow import ShadowRunner
from serving.signature_names import DEFAULT_SIGNATURE

# TF Serving's own routing expressions (http_rest_api_util.cc); ASCII as in RE2, whose \d takes 0-9 only.
POST_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.ASCII)
GET_PATH = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
                      re.ASCII)
INT64_MAX = 2 ** 63 - 1
# Bodies from this size on are parsed on a worker thread, so the loop (gRPC's too) keeps answering meanwhile.
OFF_LOOP_BODY_BYTES = 256 * 1024
# What tensorflow_model_server's HTTP server (libevent) answers for paths outside /v1/.
NOT_FOUND_HTML = "<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n</BODY></HTML>"
# Status error codes as TF Serving prints them (tensorflow.error.Code names).
OK = "OK"
# Where a prediction request keeps its request id once known, for the answer's header (errors too).
_REQUEST_ID = "request_id"
_ARM = "arm"  # and the arm the router chose, likewise


def _json(body: dict, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, indent=4), status=status, content_type="application/json")


def _error(error: ServingError) -> web.Response:
    return _json({"error": error.message}, error.http_status)


def _request_id(request: web.Request) -> str:
    """The request id to echo: `x-request-id` as sent (several header lines are one list, as HTTP
    has it), or a new one; a bad one is a 400. Kept on the request for the answer's header."""
    echo = as_invalid(request_ids.check_header, ",".join(request.headers.getall(request_ids.HEADER, ())))
    request[_REQUEST_ID] = echo
    return echo


def _with_request_id(response: web.Response, request: web.Request) -> web.Response:
    if _REQUEST_ID in request:
        response.headers[request_ids.HEADER] = request[_REQUEST_ID]
    if request.get(_ARM):
        response.headers[ARM_HEADER] = request[_ARM]
    return response


def _answer_headers(echo: str, version: int, arm: str) -> dict[str, str]:
    headers = {request_ids.HEADER: echo, VERSION_HEADER: str(version)}
    if arm:
        headers[ARM_HEADER] = arm
    return headers


def parse_version(text: str) -> int:
    """A URL's version as absl::SimpleAtoi reads it into an int64, with TF Serving's 400 when it does not fit."""
    digits = text.lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > INT64_MAX:  # int() of 5,000 digits would raise, not just be slow
        raise invalid(f"Failed to convert version: {text} to numeric.")
    return int(digits)


def _version_and_label(match: re.Match) -> tuple[int | None, str | None]:
    label = urllib.parse.unquote(match.group(3)) if match.group(3) else None
    return (parse_version(match.group(2)) if match.group(2) else None), label


def _message_json(message) -> dict:
    """Protobuf JSON as TF Serving prints metadata: proto field names, fields at their defaults included."""
    try:
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    except TypeError:  # protobuf before 5.26
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         including_default_value_fields=True)


def signature_defs_json(signature_defs) -> dict:
    return {name: _message_json(definition) for name, definition in signature_defs.items()}


class _BodyTimeout(Exception):
    pass


@contextlib.contextmanager
def _counted(info: dict):
    """Record a failed request's status for the metrics; nesting too deep for Python's recursion is a 400."""
    try:
        yield
    except RecursionError:
        info["status"] = "INVALID_ARGUMENT"
        raise invalid(json_input.TOO_DEEP) from None
    except ServingError as error:
        info["status"] = error.code.name
        raise


class RestApi:
    def __init__(self, models: dict[str, ModelStore], metrics: ServerMetrics | None = None,
                 metrics_path: str | None = None, request_log: RequestLog | None = None,
                 batcher: Batcher | None = None, method_name_check: bool = False,
                 max_body_bytes: int = 64 * 1024 * 1024, body_timeout: float = 60.0,
                 router: Router | None = None, shadow: ShadowRunner | None = None):
        """`body_timeout`: seconds a request body may take to arrive in full. `router`: the routing
        table (None: nothing is routed); `shadow` runs the shadow calls it names."""
        self.models, self.metrics, self.metrics_path = models, metrics or ServerMetrics(), metrics_path
        self.request_log, self.router, self.shadow = request_log, router or Router(), shadow
        self.batcher, self.method_name_check = batcher, method_name_check
        self.max_body_bytes, self.body_timeout = max_body_bytes, body_timeout

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def _model(self, name: str) -> ModelStore:
        name = urllib.parse.unquote(name)
        if name not in self.models:
            raise not_found(f"Servable not found for request: Latest({name})")
        return self.models[name]

    async def handle(self, request: web.Request) -> web.Response:
        # Match the path as sent (before %-decoding), as TF Serving does; names are decoded after.
        path = request.raw_path.split("?", 1)[0]
        if self.metrics_path and path == self.metrics_path and request.method == "GET":
            return web.Response(body=self.metrics.exposition(), content_type="text/plain")
        if not re.fullmatch(r"(?i)/v1/.*", path):
            return web.Response(status=404, text=NOT_FOUND_HTML, content_type="text/html")
        try:
            if request.method == "POST" and (match := POST_PATH.fullmatch(path)):
                spec = _version_and_label(match)  # as in TF Serving, before the body or the model
                if match.group(4) == "predict":
                    return await self._predict(request, match, spec, await self._body(request))
                if match.group(4) in (classify_regress.CLASSIFY, classify_regress.REGRESS):
                    return await self._classify_or_regress(request, match, spec, await self._body(request))
            if request.method == "GET" and (match := GET_PATH.fullmatch(path)):
                spec = _version_and_label(match)
                return self._metadata(match, spec) if match.group(4) else self._status(match, spec)
            if request.method == "GET" and path.lower() == "/v1/models":
                raise invalid("Missing model name in request.")
            raise invalid(f"Malformed request: {request.method} {path}")
        except ServingError as error:
            return _with_request_id(_error(error), request)
        except RecursionError:  # a last net: _counted turns those of JSON bodies into 400s already
            return _with_request_id(_error(invalid(json_input.TOO_DEEP)), request)
        except web.HTTPRequestEntityTooLarge:
            # TF Serving reads any body; this server stops where its gRPC port stops too.
            return _json({"error": f"The request body is larger than this server's limit of "
                                   f"{self.max_body_bytes} bytes: send fewer rows per request."}, 413)
        except _BodyTimeout:
            return await self._close_slow_body(request)

    async def _body(self, request: web.Request) -> bytes:
        try:
            return await asyncio.wait_for(request.read(), self.body_timeout)
        except asyncio.TimeoutError:
            raise _BodyTimeout from None

    async def _close_slow_body(self, request: web.Request) -> web.StreamResponse:
        """408, then the connection is closed: the rest of the body is not waited for."""
        response = _json({"error": f"The request body did not arrive within {self.body_timeout:g} seconds."}, 408)
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        if request.transport is not None:
            request.transport.close()
        return response

    @staticmethod
    async def _off_loop(size: int, function, *args):
        """function(*args), on a worker thread for a large body."""
        if size < OFF_LOOP_BODY_BYTES:
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    def _status(self, match: re.Match, spec: tuple[int | None, str | None]) -> web.Response:
        if not match.group(1):
            raise invalid("Missing model name in request.")
        name = urllib.parse.unquote(match.group(1))
        if name not in self.models:
            raise not_found(f"Could not find any versions of model {name}")
        version = spec[0]  # a label is ignored, as by TF Serving's GetModelStatus
        states = self.models[name].statuses(version)
        return _json({"model_version_status": [
            {"version": str(s.version), "state": s.state,
             "status": {"error_code": "UNKNOWN" if s.error else OK, "error_message": s.error}}
            for s in states]})

    def _metadata(self, match: re.Match, spec: tuple[int | None, str | None]) -> web.Response:
        if not match.group(1):
            raise invalid("Missing model name in request.")
        store = self._model(match.group(1))
        version, signature_defs = store.signature_defs(*spec)
        return _json({"model_spec": {"name": store.name, "signature_name": "", "version": str(version)},
                      "metadata": {"signature_def": {"signature_def": signature_defs_json(signature_defs)}}})

    async def _predict(self, http_request: web.Request, match: re.Match, spec: tuple[int | None, str | None],
                       body: bytes) -> web.Response:
        with self.metrics.request(urllib.parse.unquote(match.group(1)), "predict", "REST") as info, _counted(info):
            return await self._predict_measured(http_request, match, spec, body, info)

    async def _predict_measured(self, http_request: web.Request, match: re.Match,
                                spec: tuple[int | None, str | None], body: bytes, info: dict) -> web.Response:
        echo = _request_id(http_request)
        store = self._model(match.group(1))
        request = await self._off_loop(len(body), json_input.parse_json_body, body)
        signature_name = json_input.signature_name(request, DEFAULT_SIGNATURE)
        version, model, signature_defs = self._resolve(http_request, store, spec, info)
        signature_name, function = signature_calls.signature(model, signature_name, rest=True)
        if self.method_name_check:
            signature_calls.check_predict_method_name(signature_defs[signature_name])
        dtypes = {name: tensor.dtype for name, tensor in signature_calls.input_specs(function).items()}
        inputs, rows = await self._off_loop(len(body), json_input.json_inputs, request, dtypes)
        outputs = await signature_calls.run_on_loop(function, inputs, self.batcher)
        # Counted once the model took the inputs: its own complaints about them come first.
        ids = as_invalid(request_ids.row_ids, echo, signature_calls.row_count(inputs))[1]
        text = json_output.dumps(json_output.json_response(outputs, rows))
        predict_answered(store, version, signature_name, inputs, outputs, request_ids=ids, info=info,
                         version_label=spec[1], metrics=self.metrics, request_log=self.request_log,
                         router=self.router, shadow=self.shadow)
        return web.Response(text=text, content_type="application/json",
                            headers=_answer_headers(echo, version, info["arm"]))

    def _resolve(self, http_request: web.Request, store: ModelStore, spec: tuple[int | None, str | None],
                 info: dict) -> tuple[int, object, object]:
        """The version a request goes to (routed when it names none), noted for the metrics and headers."""
        routed = self.router.resolve(store, *spec, http_request.headers.get)
        info["version"], info["arm"] = str(routed.version), routed.arm
        http_request[_ARM] = routed.arm
        return routed.version, routed.model, routed.signature_defs

    async def _classify_or_regress(self, http_request: web.Request, match: re.Match,
                                   spec: tuple[int | None, str | None], body: bytes) -> web.Response:
        method = match.group(4)
        with self.metrics.request(urllib.parse.unquote(match.group(1)), method, "REST") as info, _counted(info):
            echo = _request_id(http_request)
            # As in TF Serving, the body is read in full before the model is looked up.
            request = await self._off_loop(len(body), json_input.parse_json_body, body)
            signature_name = json_input.signature_name(request, "")
            request_input = await self._off_loop(len(body), classify_regress.input_from_json, request)
            store = self._model(match.group(1))
            version, model, signature_defs = self._resolve(http_request, store, spec, info)
            name, inputs = classify_regress.prepare(signature_defs, signature_name, method, request_input,
                                                    self.method_name_check)
            outputs = await signature_calls.run_on_loop(model.signatures[name], inputs, self.batcher)
            result = classify_regress.result(method, outputs, len(inputs[classify_regress.INPUTS]))
            ids = as_invalid(request_ids.row_ids, echo, len(inputs[classify_regress.INPUTS]))[1]
        if self.request_log:
            self.request_log.record_classify_or_regress(method, store.name, version, name, request_input, result,
                                                        request_ids=ids, version_label=spec[1], arm=info["arm"],
                                                        latency_seconds=time.perf_counter() - info["started"])
        text = (classify_regress.classification_json(result) if method == classify_regress.CLASSIFY
                else classify_regress.regression_json(result))
        return web.Response(text=text, content_type="application/json",
                            headers=_answer_headers(echo, version, info["arm"]))
