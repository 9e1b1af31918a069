"""Turn raw CSV rows into model requests: tf.Examples or named feature tensors.

Both forms give the same prediction for the same row: an empty cell is left out of the
tf.Example (preprocessing then fills the feature's default) and is sent as that same
default in the named form.
"""
from __future__ import annotations

import csv
from typing import Iterable, Iterator

import tensorflow as tf

from models import features as F


def read_csv_rows(path: str) -> Iterator[dict[str, str]]:
    with open(path, newline="") as handle:
        yield from csv.DictReader(handle)


def _typed(feature: F.Feature, text: str):
    if feature.dtype == tf.string:
        return text
    if feature.dtype == tf.int64:
        return int(float(text))  # the raw data writes some integer columns as "12.0"
    return float(text)


def row_to_example(row: dict[str, str]) -> tf.train.Example:
    """A tf.Example with the model's raw features; empty cells and the label are left out."""
    example = tf.train.Example()
    for feature in F.FEATURES:
        text = row.get(feature.name, "")
        if text == "":
            continue
        value = _typed(feature, text)
        target = example.features.feature[feature.name]
        if feature.dtype == tf.string:
            target.bytes_list.value.append(value.encode())
        elif feature.dtype == tf.int64:
            target.int64_list.value.append(value)
        else:
            target.float_list.value.append(value)
    return example


def rows_to_named_features(rows: Iterable[dict[str, str]]) -> dict[str, list]:
    """Columnar {feature: [value per row]} for the serving_raw signature."""
    columns: dict[str, list] = {feature.name: [] for feature in F.FEATURES}
    for row in rows:
        for feature in F.FEATURES:
            text = row.get(feature.name, "")
            columns[feature.name].append(feature.default if text == "" else _typed(feature, text))
    return columns
