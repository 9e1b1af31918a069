"""Run a SavedModel signature on a request's input arrays, from either front end.

The JSON bodies of REST requests become arrays in serving/server/json_input.py and go back
out through serving/server/json_output.py; gRPC's TensorProtos through serving/tensor_protos.py.
"""
from __future__ import annotations

import asyncio
import weakref

import grpc
import numpy as np
import tensorflow as tf

from serving.server.errors import ServingError, invalid
from serving.signature_names import CLASSIFY_METHOD, DEFAULT_SIGNATURE, PREDICT_METHOD, REGRESS_METHOD


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


def row_count(inputs: dict[str, np.ndarray]) -> int:
    """The rows of a predict request: its first input's (by name) leading dimension; 1 for a scalar.
    A row request's inputs all have one row per instance."""
    if not inputs:
        return 0
    shape = np.shape(inputs[min(inputs)])
    return shape[0] if shape else 1


def dtype_name(dtype: tf.DType) -> str:
    """A dtype as TF Serving names it in messages (DataTypeString): float, double, int64, string."""
    return {"float16": "half", "float32": "float", "float64": "double"}.get(dtype.name, dtype.name)


def _check_inputs(specs: dict[str, tf.TensorSpec], inputs: dict[str, np.ndarray]) -> None:
    """TF Serving's checks of a request's inputs against the signature (predict_util.cc)."""
    if len(inputs) != len(specs):
        extra, missing = sorted(set(inputs) - set(specs)), sorted(set(specs) - set(inputs))
        raise invalid(f"input size does not match signature: {len(inputs)}!={len(specs)} "
                      f"len({{{','.join(sorted(inputs))}}}) != len({{{','.join(sorted(specs))}}}). "
                      f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
    for index, (name, spec) in enumerate(sorted(specs.items())):
        if name not in inputs:
            raise invalid(f"Signature input alias: {name} not found in request and no default value provided. "
                          f"Inputs expected to be in the request {{{','.join(sorted(inputs))}}}, or default "
                          "input alias set: ")
        value = np.asarray(inputs[name])
        sent = tf.string if value.dtype.kind in ("O", "S", "U") else tf.as_dtype(value.dtype)
        if sent != spec.dtype:
            raise invalid(f"Expects arg[{index}] to be {dtype_name(spec.dtype)} but {dtype_name(sent)} is provided")


def run(function, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    specs = input_specs(function)
    _check_inputs(specs, inputs)
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
