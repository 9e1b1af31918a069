"""Run a SavedModel signature on a TF Serving request: JSON (REST) or TensorProtos (gRPC).

The JSON rules follow TF Serving's json_tensor.cc for the parts this server supports: row
("instances") and columnar ("inputs") requests, {"b64": ...} strings, and the same error
messages for the mistakes clients make most.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import weakref
from typing import Any

import grpc
import numpy as np
import tensorflow as tf

from serving.errors import ServingError, invalid
from serving.json_output import FloatArray

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def signature(model, name: str, rest: bool):
    name = name or DEFAULT_SIGNATURE
    if name not in model.signatures:
        if rest:
            raise invalid(f'Serving signature name: "{name}" not found in signature def')
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f"Serving signature key \"{name}\" not found.")
    return name, model.signatures[name]


def check_predict_method_name(signature_def) -> None:
    """--enable_signature_method_name_check: Predict serves predict, classify and regress signatures only."""
    if signature_def.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        allowed = ", ".join((PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD))
        raise ServingError(grpc.StatusCode.INTERNAL, f"Expected prediction signature method_name to be one of "
                           f"{{{allowed}}}. Was: {signature_def.method_name}")


def input_specs(function) -> dict[str, tf.TensorSpec]:
    return dict(function.structured_input_signature[1])


# TensorFlow's default executor hands each kernel to its inter-op thread pool. Between the
# requests of one client those threads fall asleep, and waking them costs 0.3-0.6 ms a
# call on these machines; the single-threaded executor runs every kernel in the calling
# thread. It refuses graphs with control flow (a tf.cond or loop, once lowered) or
# reference edges: such a signature falls back to the default executor once, and stays there.
_SINGLE_THREADED = "SINGLE_THREADED_EXECUTOR"
_NEEDS_DEFAULT_EXECUTOR: "weakref.WeakSet" = weakref.WeakSet()


def _call(function, tensors: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    if function not in _NEEDS_DEFAULT_EXECUTOR:
        try:
            with tf.experimental.function_executor_type(_SINGLE_THREADED):
                return function(**tensors)
        except tf.errors.OpError as error:
            if "Single-threaded executor does not support" not in error.message:
                raise
            _NEEDS_DEFAULT_EXECUTOR.add(function)
    return function(**tensors)


def run(function, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    specs = input_specs(function)
    if set(inputs) != set(specs):
        raise invalid(f"input size does not match signature: {len(inputs)}!={len(specs)} len({sorted(inputs)}) != "
                      f"len({sorted(specs)})")
    try:
        tensors = {name: tf.constant(value, dtype=specs[name].dtype) for name, value in inputs.items()}
    except (TypeError, ValueError) as error:
        raise invalid(f"Failed to convert inputs: {error}") from None
    try:
        outputs = _call(function, tensors)
    except tf.errors.InvalidArgumentError as error:
        raise invalid(error.message) from None
    except UnicodeDecodeError:  # TensorFlow quoting undecodable input bytes in its message
        raise invalid("Could not parse the input: is every serialized example a valid tf.Example?") from None
    return {name: value.numpy() for name, value in outputs.items()}



# Model calls under way, per event loop.
_calls_under_way: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int]" = weakref.WeakKeyDictionary()


async def run_on_loop(function, inputs: dict[str, np.ndarray], batcher=None) -> dict[str, np.ndarray]:
    """run() for a request handled on an asyncio loop (both front ends run on one)."""
    if batcher is not None:
        # Queued without a thread: many waiting requests can join one batch.
        return await asyncio.wrap_future(batcher.submit(function, inputs))
    loop = asyncio.get_running_loop()
    _calls_under_way[loop] = _calls_under_way.get(loop, 0) + 1
    try:
        await asyncio.sleep(0)  # requests that arrived with this one start now, and are counted
        if _calls_under_way[loop] == 1:
            # A lone request is answered on the loop itself, without two thread hand-offs
            # (0.2-0.3 ms); one that arrives meanwhile waits one model call at most.
            return run(function, inputs)
        # Model calls hold the GIL for little of their time: on worker threads they run side by side.
        return await loop.run_in_executor(None, run, function, inputs)
    finally:
        _calls_under_way[loop] -= 1

# ---- JSON (REST) ----

def _decode_strings(value: Any) -> Any:
    """Nested JSON -> nested Python values, with {"b64": ...} and strings turned into bytes."""
    if isinstance(value, dict):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except binascii.Error:
                raise invalid("Unable to base64 decode") from None
        raise invalid(f"JSON Value: {json.dumps(value)} is not of expected type")
    if isinstance(value, list):
        return [_decode_strings(item) for item in value]
    if isinstance(value, str):
        return value.encode()
    return value


def _array(value: Any) -> np.ndarray:
    """numpy array of decoded JSON; bytes stay objects (numpy's "S" type drops trailing NULs)."""
    array = np.array(value)
    return np.array(value, dtype=object) if array.dtype.kind == "S" else array


def _is_named_row(value: Any) -> bool:
    return isinstance(value, dict) and not (set(value) == {"b64"})


def parse_json_body(body: bytes) -> dict:
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        message, offset = getattr(error, "msg", str(error)), getattr(error, "pos", 0)
        raise invalid(f"JSON Parse error: {message} at offset: {offset}") from None
    if not isinstance(request, dict):
        raise invalid(f"JSON Value: {json.dumps(request)} Is not object")
    return request


def json_inputs(request: dict, names: list[str]) -> tuple[dict[str, np.ndarray], bool]:
    """(inputs by name, True for a row request) from a parsed predict request."""
    has_rows, has_columns = "instances" in request, "inputs" in request
    if has_rows == has_columns:
        if has_rows:
            raise invalid(f"JSON Value: {json.dumps(request)} Not formatted correctly expecting only one of "
                          "'inputs' or 'instances' keys to exist ")
        raise invalid("Missing 'inputs' or 'instances' key")
    if has_rows:
        rows = request["instances"]
        if not isinstance(rows, list):
            raise invalid(f"JSON Value: {json.dumps(rows)} Excepting 'instances' to be an list/array")
        if not rows:
            raise invalid(f"JSON Value: {json.dumps(request)} No values in 'instances' array")
        if _is_named_row(rows[0]):
            columns: dict[str, list] = {name: [] for name in names}
            for index, row in enumerate(rows):
                if not _is_named_row(row) or set(row) != set(names):
                    raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: "
                                  f"{json.dumps(row)} keys must be equal to: {','.join(sorted(names))}")
                for name in names:
                    columns[name].append(_decode_strings(row[name]))
            return {name: _array(values) for name, values in columns.items()}, True
        if len(names) != 1:
            raise invalid("instances is a plain list, but expecting list of objects as multiple input tensors "
                          "required as per tensorinfo_map")
        return {names[0]: _array(_decode_strings(rows))}, True
    columns_value = request["inputs"]
    if _is_named_row(columns_value):
        missing = [name for name in names if name not in columns_value]
        if missing:
            raise invalid(f"Missing named input: {missing[0]} in 'inputs' object.")
        return {name: _array(_decode_strings(columns_value[name])) for name in names}, False
    if len(names) != 1:
        raise invalid("inputs is a plain value/list, but expecting an object as multiple input tensors required "
                      "as per tensorinfo_map")
    return {names[0]: _array(_decode_strings(columns_value))}, False


def _json_value(array: np.ndarray, alias: str) -> Any:
    if array.dtype.kind == "f" and array.dtype.itemsize in (4, 8):
        return FloatArray(array)  # written as TF Serving writes floats: 0.293937296, 3.0
    if array.dtype.kind in ("S", "O"):
        if alias.endswith("_bytes"):
            return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])(array).tolist()
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()


def json_response(outputs: dict[str, np.ndarray], rows: bool) -> dict:
    if not rows:
        if len(outputs) == 1:
            (alias, value), = outputs.items()
            return {"outputs": _json_value(value, alias)}
        return {"outputs": {alias: _json_value(value, alias) for alias, value in outputs.items()}}
    if len(outputs) == 1:
        (alias, value), = outputs.items()
        return {"predictions": _json_value(value, alias)}
    sizes = {alias: value.shape[0] if value.ndim else None for alias, value in outputs.items()}
    batch = next(iter(sizes.values()))
    for alias, size in sizes.items():
        if size is None:
            raise invalid(f"Tensor name: {alias} has no shape information ")
        if size != batch:
            raise invalid(f"Tensor name: {alias} has inconsistent batch size: {size} expecting: {batch}")
    columns = {alias: _json_value(value, alias) for alias, value in outputs.items()}
    return {"predictions": [{alias: columns[alias][i] for alias in columns} for i in range(batch)]}
