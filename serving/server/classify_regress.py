"""TF Serving's Classify and Regress APIs: tf.Examples in, class scores or values out.

gRPC requests carry an `Input` proto (a list of tf.Examples, optionally with one context
example merged into each); REST requests carry the same as JSON ({"examples": [...],
"context": {...}}) and are turned into that proto first (json_tensor.cc's rules: 1 is an
int64 feature, 1.0 a float one). Signatures are checked the way tensorflow_model_server
checks them with its default flags (classifier.cc / regressor.cc): by shape, one input
named `inputs` and outputs named `classes`/`scores` or `outputs`, not by method name.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np
from google.protobuf import text_format
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from serving.server.errors import invalid
from serving.server.json_output import format_float
from serving.signature_names import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD

CLASSIFY, REGRESS = "classify", "regress"
INPUTS, CLASSES, SCORES, OUTPUTS = "inputs", "classes", "scores", "outputs"


def check_signature(signature_defs, name: str, method: str, method_name_check: bool = False) -> str:
    """The signature's name once it has the shape `method` needs (and, with
    --enable_signature_method_name_check, its method_name); INVALID_ARGUMENT otherwise."""
    name = name or DEFAULT_SIGNATURE
    if name not in signature_defs:
        raise invalid(f"No signature was found with the name: {name}")
    definition = signature_defs[name]
    if method_name_check:
        wanted, kind = (CLASSIFY_METHOD, "classification") if method == CLASSIFY else (REGRESS_METHOD, "regression")
        if definition.method_name != wanted:
            raise invalid(f"Expected {kind} signature method_name to be {wanted}. Was: {definition.method_name}")
    if len(definition.inputs) != 1:
        raise invalid("Expected one input Tensor.")
    kind = "classification" if method == CLASSIFY else "regression"
    if method == CLASSIFY and len(definition.outputs) not in (1, 2):
        raise invalid(f"Expected one or two output Tensors, found {len(definition.outputs)}")
    if method == REGRESS and len(definition.outputs) != 1:
        raise invalid("Expected one output Tensor.")
    # DebugString of the SignatureDef, as TF Serving quotes it.
    quoted = text_format.MessageToString(definition)
    if INPUTS not in definition.inputs:
        raise invalid(f"No {kind} inputs found in SignatureDef: {quoted}")
    if method == CLASSIFY and not {CLASSES, SCORES} & set(definition.outputs):
        raise invalid('Expected classification signature outputs to contain at least one of "classes" or "scores". '
                      f"Signature was: {quoted}")
    if method == REGRESS and OUTPUTS not in definition.outputs:
        raise invalid(f"No regression outputs found in SignatureDef: {quoted}")
    return name


def serialized_examples(request_input: input_pb2.Input) -> np.ndarray:
    """1-D array of serialized tf.Examples; a context is merged by byte concatenation (the
    example's own features win), exactly as TF Serving does."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        rows = [example.SerializeToString() for example in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        context = request_input.example_list_with_context.context.SerializeToString()
        rows = [context + example.SerializeToString() for example in request_input.example_list_with_context.examples]
    else:
        rows = []
    if not rows:
        raise invalid("Input is empty.")
    array = np.empty(len(rows), dtype=object)  # object keeps trailing NUL bytes numpy's "S" would drop
    array[:] = rows
    return array


def classification_result(outputs: dict[str, np.ndarray], count: int) -> classification_pb2.ClassificationResult:
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    for alias, value in ((CLASSES, classes), (SCORES, scores)):
        if value is None:
            continue
        if value.ndim != 2:
            raise invalid(f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)}")
        if len(value) != count:
            raise invalid(f"Expected {alias} output batch size of {count}. Got: {len(value)}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid(f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. "
                      f"{scores.shape[1]}")
    result = classification_pb2.ClassificationResult()
    num_classes = (classes if classes is not None else scores).shape[1]
    for row in range(count):
        entry = result.classifications.add()
        for column in range(num_classes):
            label = classes[row, column] if classes is not None else b""
            score = float(scores[row, column]) if scores is not None else 0.0
            entry.classes.add(label=label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label),
                              score=score)
    return result


def regression_result(outputs: dict[str, np.ndarray], count: int) -> regression_pb2.RegressionResult:
    values = outputs[OUTPUTS]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                      f"{list(values.shape)}")
    if len(values) != count:
        raise invalid(f"Input batch size did not match output batch size: {count} vs. {len(values)}")
    result = regression_pb2.RegressionResult()
    for value in values.reshape(-1):
        result.regressions.add(value=float(value))
    return result


def prepare(signature_defs, signature_name: str, method: str, request_input: input_pb2.Input,
            method_name_check: bool = False) -> tuple[str, dict[str, np.ndarray]]:
    """(signature name, its inputs) for one Classify or Regress request, once both are valid."""
    name = check_signature(signature_defs, signature_name, method, method_name_check)
    return name, {INPUTS: serialized_examples(request_input)}


def result(method: str, outputs: dict[str, np.ndarray], count: int):
    """The ClassificationResult or RegressionResult of the signature's outputs for `count` examples."""
    return classification_result(outputs, count) if method == CLASSIFY else regression_result(outputs, count)


# ---- JSON (REST) ----

def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    return {bool: "Boolean", dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _add_value(feature, name: str, value: Any) -> None:
    """One JSON value into a tf.train.Feature; a feature's values must all be of one kind."""
    if isinstance(value, int):  # bool too: true/false become 1/0
        if value >= 2 ** 63:
            raise invalid(f"Feature: {name} has uint64 element. Only int64 is supported.")
        kind, value = "int64_list", int(value)
    elif isinstance(value, float):
        kind = "float_list"
    elif isinstance(value, str):
        kind, value = "bytes_list", value.encode()
    elif isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            kind, value = "bytes_list", base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise invalid("Unable to base64 decode") from None
    else:
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}")
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        raise invalid(f"Unexpected element type in feature: {name} expecting type: {current.split('_')[0]}")
    getattr(feature, kind).value.append(value)


def _example(value: Any, example) -> None:
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {_json_type(value)}")
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_value(feature, name, item)


def input_from_json(request: dict) -> input_pb2.Input:
    """The Input proto of a REST classify/regress body (already parsed to a dict)."""
    request_input = input_pb2.Input()
    has_context = "context" in request
    if has_context:
        _example(request["context"], request_input.example_list_with_context.context)
    if "examples" not in request:
        # TF Serving says "classify" here for regress requests too.
        raise invalid(f"JSON Value: {json.dumps(request)} When method is classify, key 'examples' is expected and "
                      "was not found")
    examples = request["examples"]
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {json.dumps(request)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid(f"JSON Value: {json.dumps(request)} 'examples' value is an empty array")
    target = (request_input.example_list_with_context if has_context else request_input.example_list).examples
    for value in examples:
        _example(value, target.add())
    return request_input


def classification_json(result: classification_pb2.ClassificationResult) -> str:
    """{"results": [[[label, score], ...] per example]}, scores formatted like TF Serving's."""
    rows = (", ".join(f"[{json.dumps(c.label)}, {format_float(c.score)}]" for c in entry.classes)
            for entry in result.classifications)
    return '{"results": [' + ", ".join(f"[{row}]" for row in rows) + "]}"


def regression_json(result: regression_pb2.RegressionResult) -> str:
    return '{"results": [' + ", ".join(format_float(r.value) for r in result.regressions) + "]}"
