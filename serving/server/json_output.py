"""REST response bodies written the way TF Serving writes them.

Predict responses: {"predictions": ...} for row requests, {"outputs": ...} for columnar
ones, the output name left out when there is only one; string outputs as text, or as
{"b64": ...} when the output's alias ends in "_bytes".

TF Serving's rapidjson writer (json_tensor.cc WriteDecimal) prints a float with 6
significant digits when that reads back as the same float, else with 9 (17 for doubles),
and adds ".0" when the text has neither "." nor an exponent: 3.0, 0.5, 1e-05, 0.333333343.
NaN and infinities are written as NaN / Infinity / -Infinity (not strict JSON, like TF Serving).
"""
from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np

from serving.server.errors import invalid


def format_float(value: float, double: bool = False) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    narrow = float if double else np.float32
    value = float(narrow(value))  # a float32 output is printed as the float32 it is
    text = f"{value:g}"
    if narrow(float(text)) != narrow(value):
        text = f"{value:.17g}" if double else f"{value:.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


class FloatArray:
    """A float tensor (or one row of it) to be written with format_float."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __getitem__(self, index: int) -> "FloatArray":
        return FloatArray(self.array[index])


def _floats(value, double: bool) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_floats(item, double) for item in value) + "]"
    return format_float(value, double)


def dumps(value) -> str:
    """JSON text of a response body: dicts, lists, strings, ints, bools and FloatArrays."""
    if isinstance(value, FloatArray):
        return _floats(value.array.tolist(), value.array.dtype == np.float64)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {dumps(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    return json.dumps(value)


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
