"""Numbers in predict/classify/regress responses, written the way TF Serving writes them.

TF Serving's rapidjson writer (json_tensor.cc WriteDecimal) prints a float with 6
significant digits when that reads back as the same float, else with 9 (17 for doubles),
and adds ".0" when the text has neither "." nor an exponent: 3.0, 0.5, 1e-05, 0.333333343.
NaN and infinities are written as NaN / Infinity / -Infinity (not strict JSON, like TF Serving).
"""
from __future__ import annotations

import json
import math

import numpy as np


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
