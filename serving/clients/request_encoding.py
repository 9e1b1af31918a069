"""Turn CSV rows into TF Serving requests: tf.Examples or named feature columns.

The clients serve any model, so the feature types come from the caller as a mapping
{feature name: "int" | "float" | "bytes"}: read from a TFMD schema file
(`feature_types_from_schema`), or built by code that knows the model. Columns not in the
mapping (a label, an id) are left out.

Both request forms give the same prediction for the same row when the model fills a
missing feature with the default given here: an empty cell is left out of the tf.Example
and is sent as that default in the named form.

Serialized and JSON examples are built with example_proto.Example, the same message as
tf.train.Example without importing TensorFlow; only `row_to_example`, whose tf.train.Example
goes into TF Serving's gRPC protos, imports TensorFlow.
"""
from __future__ import annotations

import base64
import csv
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from serving.clients.example_proto import Example

if TYPE_CHECKING:
    import tensorflow as tf

FeatureTypes = Mapping[str, str]  # {feature name: "int" | "float" | "bytes"}
# Each kind's tf.train.Feature field, and the value an empty cell stands for in named features.
_LIST_FIELDS = {"int": "int64_list", "float": "float_list", "bytes": "bytes_list"}
_DEFAULTS: dict[str, Any] = {"int": 0, "float": 0.0, "bytes": ""}
_SCHEMA_KINDS = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float", schema_pb2.BYTES: "bytes"}
# Stages schema.proto treats as deprecated, and derived features, which are not in input data.
_NOT_INPUT_STAGES = (schema_pb2.PLANNED, schema_pb2.ALPHA, schema_pb2.DEPRECATED, schema_pb2.DEBUG_ONLY,
                     schema_pb2.DISABLED, schema_pb2.VALIDATION_DERIVED)


class SchemaError(ValueError):
    """A schema file that cannot be read, parsed or used; the message names the file."""


def read_csv_rows(path: str) -> Iterator[dict[str, str]]:
    with open(path, newline="") as handle:
        yield from csv.DictReader(handle)


def _in_environment(schema: schema_pb2.Schema, feature: schema_pb2.Feature, environment: str) -> bool:
    """schema.proto's rule: in `environment` if it is in in_environment or default_environment,
    and not in not_in_environment. A schema that names no environment at all puts every
    feature everywhere."""
    if environment in feature.not_in_environment:
        return False
    if not schema.default_environment and not feature.in_environment:
        return True
    return environment in feature.in_environment or environment in schema.default_environment


def feature_types_from_schema(path: str, environment: str = "SERVING") -> dict[str, str]:
    """{name: kind} of the features a TFMD schema (text Schema proto) puts in `environment`;
    deprecated, disabled and derived features are left out. Raises SchemaError naming the file."""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as error:
        raise SchemaError(f"cannot read the schema {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise SchemaError(f"the schema {path} is not a text Schema proto: not UTF-8 text") from None
    try:
        schema = text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as error:
        message = " ".join(str(error).split())  # one line
        raise SchemaError(f"the schema {path} is not a text Schema proto: {message}") from None
    types = {}
    for feature in schema.feature:
        if (feature.deprecated or feature.lifecycle_stage in _NOT_INPUT_STAGES
                or not _in_environment(schema, feature, environment)):
            continue
        if feature.type not in _SCHEMA_KINDS:
            kind = schema_pb2.FeatureType.Name(feature.type)
            raise SchemaError(f"the schema {path}: feature {feature.name} has type {kind}; "
                              "only INT, FLOAT and BYTES go in a CSV cell")
        types[feature.name] = _SCHEMA_KINDS[feature.type]
    if not types:
        raise SchemaError(f"the schema {path} has no features in environment {environment}")
    return types


def _kind(feature_types: FeatureTypes, name: str) -> str:
    kind = feature_types[name]
    if kind not in _LIST_FIELDS:
        raise ValueError(f"feature {name}: type {kind!r} is none of {', '.join(_LIST_FIELDS)}")
    return kind


def _typed(kind: str, text: str):
    if kind == "bytes":
        return text
    if kind == "int":
        return int(float(text))  # CSV writers often give integer columns as "12.0"
    return float(text)


def _fill(example, row: Mapping[str, str], feature_types: FeatureTypes):
    """`example` (an empty tf.train.Example or example_proto.Example) with the row's cells for the
    features in `feature_types`; empty cells and other columns are left out."""
    for name in feature_types:
        kind = _kind(feature_types, name)
        text = row.get(name, "")
        if text == "":
            continue
        value = _typed(kind, text)
        field = getattr(example.features.feature[name], _LIST_FIELDS[kind])
        field.value.append(value.encode() if kind == "bytes" else value)
    return example


def row_to_example(row: Mapping[str, str], feature_types: FeatureTypes) -> tf.train.Example:
    """A tf.Example of the row's cells for the features in `feature_types`; empty cells and
    other columns are left out. Imports TensorFlow: to send a row, use serialized_examples."""
    import tensorflow as tf

    return _fill(tf.train.Example(), row, feature_types)


def serialized_examples(rows: Iterable[Mapping[str, str]], feature_types: FeatureTypes) -> list[bytes]:
    """row_to_example(row, feature_types).SerializeToString() per row, without TensorFlow: the same
    message (map entries may come in another order on the wire, as between two tf.train.Examples)."""
    return [_fill(Example(), row, feature_types).SerializeToString() for row in rows]


def json_examples(rows: Iterable[Mapping[str, str]], feature_types: FeatureTypes) -> list[dict[str, list]]:
    """example_to_json(row_to_example(row, feature_types)) per row, without TensorFlow."""
    return [example_to_json(_fill(Example(), row, feature_types)) for row in rows]


def rows_to_named_features(rows: Iterable[Mapping[str, str]], feature_types: FeatureTypes,
                           defaults: Mapping[str, Any] | None = None) -> dict[str, list]:
    """Columnar {feature: [value per row]}, for a signature with one input per feature. An
    empty cell becomes defaults[name], or 0, 0.0 or "" by type."""
    defaults = defaults or {}
    kinds = {name: _kind(feature_types, name) for name in feature_types}
    columns: dict[str, list] = {name: [] for name in kinds}
    for row in rows:
        for name, kind in kinds.items():
            text = row.get(name, "")
            columns[name].append(defaults.get(name, _DEFAULTS[kind]) if text == "" else _typed(kind, text))
    return columns


def example_to_json(example: tf.train.Example | Example) -> dict[str, list]:
    """A tf.Example as TF Serving's REST Classify/Regress APIs take it: ints stay ints (int64
    features), floats stay floats, and bytes go as text or, when not UTF-8, {"b64": ...}."""
    def text_or_b64(value: bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}

    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        out[name] = [text_or_b64(v) for v in values] if kind == "bytes_list" else values
    return out
