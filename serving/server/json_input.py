"""REST predict bodies -> input arrays, with TF Serving's type and shape rules.

TF Serving (json_tensor.cc) checks every JSON value against the dtype of the signature
input it feeds, takes a tensor's shape from the first element at each level of nesting,
and rejects anything else with messages clients have come to match on:
  - a float input takes any number that fits a float32 without loss; int inputs take
    integers only (1.0 is refused); strings take text or {"b64": ...}; bools take true/false;
  - row requests ("instances") wrap each problem with the element (and key) it came from;
  - columnar requests ("inputs") report it as it is, and ignore keys no input has.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import grpc
import numpy as np
import tensorflow as tf

from serving.server.errors import ServingError, invalid
from serving.server.json_output import format_float
from serving.server.signature_calls import dtype_name

# (largest integer held exactly, largest magnitude) of the float inputs, as TF Serving's IsLosslessDecimal.
_FLOAT_LIMITS = {tf.float32: (2 ** 24 - 1, float(np.finfo(np.float32).max)), tf.float64: (2 ** 53 - 1, math.inf)}
# numpy's limit on dimensions (TF's is 254): deeper nesting is refused before it is walked, which also
# keeps _fill's recursion shallow.
MAX_DIMS = 32
# Integers must fit the input's type (TF Serving lets int32 values wrap into int8, int16 and uint8).
_INTEGER_TYPES = (tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint32, tf.uint64)


# Python's words for a parse error -> rapidjson's (GetParseError_En), where TF Serving's clients may read them.
_RAPIDJSON_MESSAGES = {"Extra data": "The document root must not be followed by other values.",
                       "Expecting value": "Invalid value."}
# Nesting deeper than Python's recursion limit; rapidjson has no limit of its own.
TOO_DEEP = "JSON Parse error: The document nests arrays and objects too deeply"


def parse_json_body(body: bytes) -> dict:
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        request = json.loads(body)
    except RecursionError:
        raise invalid(TOO_DEEP) from None
    except json.JSONDecodeError as error:
        # rapidjson counts bytes, Python characters.
        offset = len(error.doc[:error.pos].encode("utf-8", "surrogatepass"))
        raise invalid(f"JSON Parse error: {_RAPIDJSON_MESSAGES.get(error.msg, error.msg)} at offset: {offset}") \
            from None
    except UnicodeDecodeError as error:
        raise invalid(f"JSON Parse error: {error} at offset: {error.start}") from None
    if not isinstance(request, dict):
        raise invalid(f"JSON Value: {json_text(request)} Is not object")
    return request


def signature_name(request: dict, default: str) -> str:
    name = request.get("signature_name", default)
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {json_text(request)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    return name


def json_text(value: Any) -> str:
    """A JSON value as TF Serving quotes it in error messages."""
    if isinstance(value, float):
        return format_float(value, double=True)
    if isinstance(value, (dict, list)):
        try:
            return json.dumps(value, indent=4, ensure_ascii=False)
        except RecursionError:  # an error message must not fail on the value it quotes
            return "(a JSON value nested too deeply to quote)"
    return json.dumps(value, ensure_ascii=False)


def _json_type(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "Null", True: "True", False: "False"}[value]
    if isinstance(value, (int, float)):
        return "Number"
    return {str: "String", dict: "Object", list: "Array"}[type(value)]


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _type_error(value: Any, dtype: tf.DType) -> ServingError:
    return invalid(f"JSON Value: {json_text(value)} Type: {_json_type(value)} is not of expected type: "
                   f"{dtype_name(dtype)}")


def _leaf(value: Any, dtype: tf.DType) -> Any:
    """One JSON scalar as a value of `dtype`, or TF Serving's error for it."""
    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode()
        if not isinstance(value, dict):
            raise _type_error(value, dtype)
        if not _is_b64(value):
            raise invalid(f"JSON Value: {json_text(value)} not formatted correctly for base64 data")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise invalid("Unable to base64 decode") from None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype in _FLOAT_LIMITS:
        if not is_number:
            raise _type_error(value, dtype)
        largest_exact_integer, largest = _FLOAT_LIMITS[dtype]
        if isinstance(value, int):
            lossy = abs(value) > largest_exact_integer
        else:
            lossy = math.isfinite(value) and abs(value) > largest
        if lossy:
            raise invalid(f"Cannot convert JSON value: {json_text(value)} to {dtype_name(dtype)} "
                          "without loss of precision.")
        return value
    if dtype in _INTEGER_TYPES:
        limits = np.iinfo(dtype.as_numpy_dtype)
        if not (is_number and isinstance(value, int) and limits.min <= value <= limits.max):
            raise _type_error(value, dtype)
        return value
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                       f"Conversion of JSON Value: {json_text(value)} to type: {dtype_name(dtype)}")


def _shape(value: Any) -> list[int]:
    """The shape TF Serving reads off the first element at each level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > MAX_DIMS:
            raise invalid(f"JSON Value: lists nested more than {MAX_DIMS} deep: this server takes tensors of at "
                          f"most {MAX_DIMS} dimensions")
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, shape: list[int], dtype: tf.DType, level: int, out: list) -> None:
    if not isinstance(value, list):
        if level != len(shape):
            raise invalid(f"JSON Value: {json_text(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                          f"Expected at level: {len(shape)}")
        out.append(_leaf(value, dtype))
        return
    if level >= len(shape):
        raise invalid(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise invalid(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                      f"expected size: {shape[level]}")
    for item in value:
        _fill(item, shape, dtype, level + 1, out)


def _values(value: Any, dtype: tf.DType) -> tuple[list[int], list]:
    """(shape, values in row-major order) of a JSON value (a scalar or nested lists)."""
    shape, values = _shape(value), []
    _fill(value, shape, dtype, 0, values)
    return shape, values


def _array(shape: list[int], values: list, dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:
        array = np.empty(len(values), dtype=object)  # object keeps trailing NUL bytes numpy's "S" drops
        array[:] = values
        return array.reshape(shape)
    return np.array(values, dtype=dtype.as_numpy_dtype).reshape(shape)


def tensor(value: Any, dtype: tf.DType) -> np.ndarray:
    """A JSON value (a scalar or nested lists) as an array of `dtype`."""
    return _array(*_values(value, dtype), dtype)


def _is_named_row(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


class _Rows:
    """The rows of one input, joined into one tensor; each must have the first one's size and shape."""

    def __init__(self, dtype: tf.DType):
        self.dtype, self.shape, self.values, self.count = dtype, None, [], 0

    def add(self, value: Any) -> None:
        shape, values = _values(value, self.dtype)
        if self.shape is None:
            self.shape = shape
        elif len(values) != math.prod(self.shape):
            raise invalid(f"Expecting tensor size: {math.prod(self.shape)} but got: {len(values)}")
        elif shape != self.shape:
            raise invalid(f"Expecting shape [{','.join(map(str, self.shape))}] but got: [{','.join(map(str, shape))}]")
        self.values.extend(values)
        self.count += 1

    def array(self) -> np.ndarray:
        return _array([self.count] + self.shape, self.values, self.dtype)


def _wrapped(error: ServingError, where: str) -> ServingError:
    return invalid(f"Failed to process element: {where} of 'instances' list. Error: {error.code.name}: "
                   f"{error.message}")


def _from_rows(rows: list, dtypes: dict[str, tf.DType]) -> dict[str, np.ndarray]:
    names = sorted(dtypes)
    if not isinstance(rows[0], dict) and len(names) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple input tensors "
                      "required as per tensorinfo_map")
    named = _is_named_row(rows[0])
    stacked = {name: _Rows(dtypes[name]) for name in names}
    for index, row in enumerate(rows):
        if named != _is_named_row(row):
            raise invalid(f"Expecting object but got list at item {index} of input list" if named else
                          f"Expecting value/list but got object at item {index} of input list")
        if not named:
            try:
                stacked[names[0]].add(row)
            except ServingError as error:
                raise _wrapped(error, str(index)) from None
            continue
        for name, value in row.items():
            try:
                if name not in dtypes:
                    raise invalid(f"JSON object: does not have named input: {name}")
                stacked[name].add(value)
            except ServingError as error:
                raise _wrapped(error, f"{index} key: {name}") from None
        if set(row) != set(names):
            raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: "
                          f"{json_text(row)} keys must be equal to: {','.join(names)}")
    return {name: rows.array() for name, rows in stacked.items() if rows.count}


def json_inputs(request: dict, dtypes: dict[str, tf.DType]) -> tuple[dict[str, np.ndarray], bool]:
    """(inputs by name, True for a row request) from a parsed predict request, for a
    signature whose inputs have `dtypes`."""
    has_rows, has_columns = "instances" in request, "inputs" in request
    if has_rows == has_columns:
        if has_rows:
            raise invalid(f"JSON Value: {json_text(request)} Not formatted correctly expecting only one of "
                          "'inputs' or 'instances' keys to exist ")
        raise invalid("Missing 'inputs' or 'instances' key")
    if has_rows:
        rows = request["instances"]
        if not isinstance(rows, list):
            raise invalid(f"JSON Value: {json_text(request)} Excepting 'instances' to be an list/array")
        if not rows:
            raise invalid(f"JSON Value: {json_text(request)} No values in 'instances' array")
        return _from_rows(rows, dtypes), True
    columns = request["inputs"]
    if not _is_named_row(columns):
        if len(dtypes) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple input tensors "
                          "required as per tensorinfo_map")
        (name, dtype), = dtypes.items()
        return {name: tensor(columns, dtype)}, False
    inputs = {}
    for name in sorted(dtypes):
        if name not in columns:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        inputs[name] = tensor(columns[name], dtypes[name])
    return inputs, False
