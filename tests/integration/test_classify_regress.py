"""Classify and Regress against TF Serving's contract, through plain HTTP and the official
gRPC stubs, on loopback ports."""
from __future__ import annotations

import base64
import json
import re
import shutil

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    model_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from models import features as F
from models.signatures import OUTPUT_KEY
from serving.clients.request_encoding import read_csv_rows, row_to_example
from serving.server.model_server import ModelServer
from serving.server.model_store import ModelStore

pytestmark = pytest.mark.slow
NAME = "taxi-tips"
TYPES = F.feature_types()


@pytest.fixture(scope="module")
def served(tmp_path_factory, exported_model_dir, small_csv):
    base = tmp_path_factory.mktemp("serving") / NAME
    shutil.copytree(exported_model_dir, base / "3")
    server = ModelServer({NAME: ModelStore(NAME, str(base), poll_seconds=0)}).start()
    rows = list(read_csv_rows(str(small_csv)))[:8]
    examples = [row_to_example(row, TYPES) for row in rows]
    expected = tf.saved_model.load(str(exported_model_dir)).signatures["serving_default"](
        examples=tf.constant([e.SerializeToString() for e in examples]))[OUTPUT_KEY].numpy().reshape(-1)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel), examples, expected
    server.stop()


def _json_example(example: tf.train.Example) -> dict:
    """The JSON form TF Serving's REST API takes: ints stay ints, floats are written with a '.'."""
    out = {}
    for name, feature in example.features.feature.items():
        values = list(getattr(feature, feature.WhichOneof("kind")).value)
        out[name] = [v.decode() if isinstance(v, bytes) else v for v in values]
    return out


def _post(server, verb: str, body, path: str = f"/v1/models/{NAME}") -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return requests.post(f"http://127.0.0.1:{server.rest_port}{path}:{verb}", data=data, timeout=10)


def test_rest_classify_gives_both_classes_with_scores(served):
    server, _, examples, expected = served
    reply = _post(server, "classify", {"signature_name": "classification",
                                       "examples": [_json_example(e) for e in examples]})
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    results = reply.json()["results"]
    assert [[label for label, _ in classes] for classes in results] == [["0", "1"]] * len(examples)
    np.testing.assert_allclose([classes[1][1] for classes in results], expected, atol=1e-6)
    np.testing.assert_allclose([classes[0][1] + classes[1][1] for classes in results], 1.0, atol=1e-6)


def test_rest_regress_gives_one_value_per_example(served):
    server, _, examples, expected = served
    reply = _post(server, "regress", {"signature_name": "regression",
                                      "examples": [_json_example(e) for e in examples]})
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(reply.json()["results"], expected, atol=1e-6)
    # Versions and labels route as for predict.
    versioned = _post(server, "regress", {"signature_name": "regression", "examples": [_json_example(examples[0])]},
                      path=f"/v1/models/{NAME}/versions/3")
    np.testing.assert_allclose(versioned.json()["results"], expected[:1], atol=1e-6)


def test_rest_context_features_are_shared_and_the_example_wins(served):
    server, _, examples, expected = served
    full = [_json_example(e) for e in examples[:3]]
    shared = {"payment_type": full[0]["payment_type"], "fare": [99999.0]}
    # Each example keeps its own fare (the example wins over the context) and takes the
    # shared payment type from the context.
    rows = [{k: v for k, v in example.items() if k != "payment_type"} for example in full]
    same_payment = [dict(example, payment_type=full[0]["payment_type"]) for example in full]
    direct = _post(server, "regress", {"signature_name": "regression", "examples": same_payment}).json()["results"]
    reply = _post(server, "regress", {"signature_name": "regression", "context": shared, "examples": rows})
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(reply.json()["results"], direct, atol=1e-6)


@pytest.mark.parametrize("verb, body, message", [
    ("classify", {"examples": [{"fare": 1.0}]}, "No classification inputs found in SignatureDef: "),
    ("regress", {"signature_name": "serving_raw", "examples": [{"fare": 1.0}]}, "Expected one input Tensor."),
    ("regress", {"signature_name": "classification", "examples": [{"fare": 1.0}]}, "Expected one output Tensor."),
    ("classify", {"signature_name": "regression", "examples": [{"fare": 1.0}]},
     'Expected classification signature outputs to contain at least one of "classes" or "scores".'),
    ("classify", {"signature_name": "nope", "examples": [{"fare": 1.0}]}, "No signature was found with the name: nope"),
    ("classify", {"signature_name": "classification"}, "key 'examples' is expected and was not found"),
    ("regress", {"signature_name": "regression", "examples": {}}, "Expecting 'examples' value to be an list/array"),
    ("regress", {"signature_name": "regression", "examples": []}, "'examples' value is an empty array"),
    ("regress", {"signature_name": "regression", "examples": [3]}, "Example must be JSON object but got JSON Number"),
    ("regress", {"signature_name": "regression", "examples": [{"fare": None}]},
     "Feature: fare has element with unexpected JSON type: Null"),
    ("regress", {"signature_name": "regression", "examples": [{"fare": [1.0, "a"]}]},
     "Unexpected element type in feature: fare expecting type: float"),
    ("regress", {"signature_name": "regression", "examples": [{"fare": {"b64": "***"}}]}, "Unable to base64 decode"),
    # An int where the model wants a float: the model itself refuses the example.
    ("regress", {"signature_name": "regression", "examples": [{"fare": 12}]}, "fare"),
    ("regress", b"{bad", "JSON Parse error"),
])
def test_rest_bad_classify_and_regress_requests_get_400(served, verb, body, message):
    server, *_ = served
    reply = _post(server, verb, body)
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["error"]
    assert _post(server, "regress", {"signature_name": "regression", "examples": [{"fare": 1.0}]}).status_code == 200


def test_rest_classify_on_an_unknown_model_is_404(served):
    server, *_ = served
    reply = _post(server, "classify", {"examples": [{"fare": 1.0}]}, path="/v1/models/other")
    assert reply.status_code == 404 and reply.json() == {"error": "Servable not found for request: Latest(other)"}


def _spec(signature_name: str) -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name=NAME, signature_name=signature_name)


def test_grpc_classify_and_regress_through_the_official_stubs(served):
    _, stub, examples, expected = served
    request = classification_pb2.ClassificationRequest(model_spec=_spec("classification"))
    request.input.example_list.examples.extend(examples)
    response = stub.Classify(request, timeout=10)
    assert (response.model_spec.name, response.model_spec.signature_name, response.model_spec.version.value) == \
        (NAME, "classification", 3)
    assert [[c.label for c in entry.classes] for entry in response.result.classifications] == [["0", "1"]] * 8
    np.testing.assert_allclose([entry.classes[1].score for entry in response.result.classifications], expected,
                               atol=1e-6)
    request = regression_pb2.RegressionRequest(model_spec=_spec("regression"))
    request.input.example_list_with_context.examples.extend(examples)
    response = stub.Regress(request, timeout=10)
    np.testing.assert_allclose([r.value for r in response.result.regressions], expected, atol=1e-6)
    assert response.model_spec.signature_name == "regression"


@pytest.mark.parametrize("method, signature_name, examples, code, message", [
    ("Classify", "", True, grpc.StatusCode.INVALID_ARGUMENT, "No classification inputs found in SignatureDef"),
    ("Regress", "serving_default", True, grpc.StatusCode.INVALID_ARGUMENT, "No regression inputs found"),
    ("Classify", "nope", True, grpc.StatusCode.INVALID_ARGUMENT, "No signature was found with the name: nope"),
    ("Regress", "regression", False, grpc.StatusCode.INVALID_ARGUMENT, "Input is empty."),
])
def test_grpc_classify_and_regress_errors(served, method, signature_name, examples, code, message):
    _, stub, rows, _ = served
    request_type = {"Classify": classification_pb2.ClassificationRequest,
                    "Regress": regression_pb2.RegressionRequest}[method]
    request = request_type(model_spec=_spec(signature_name), input=input_pb2.Input())
    if examples:
        request.input.example_list.examples.extend(rows[:1])
    with pytest.raises(grpc.RpcError) as failure:
        getattr(stub, method)(request, timeout=10)
    assert failure.value.code() == code and message in failure.value.details()
    with pytest.raises(grpc.RpcError) as failure:
        stub.Classify(classification_pb2.ClassificationRequest(model_spec=model_pb2.ModelSpec(name="other")),
                      timeout=10)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_examples_of_the_wrong_type_are_refused(served):
    _, stub, rows, _ = served
    bad = tf.train.Example()
    bad.CopyFrom(rows[0])
    del bad.features.feature["fare"].float_list.value[:]
    bad.features.feature["fare"].bytes_list.value.append(b"twelve")
    request = regression_pb2.RegressionRequest(model_spec=_spec("regression"))
    request.input.example_list.examples.extend([rows[1], bad])
    with pytest.raises(grpc.RpcError) as failure:
        stub.Regress(request, timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "fare" in failure.value.details()


def test_clients_classify_and_regress_alike_over_grpc_and_rest(served, small_csv):
    from serving.clients import GrpcClient, RestClient
    server, _, _, expected = served
    rows = list(read_csv_rows(str(small_csv)))[:8]
    for client in (GrpcClient(f"127.0.0.1:{server.grpc_port}", NAME, TYPES),
                   RestClient(f"http://127.0.0.1:{server.rest_port}", NAME, TYPES)):
        try:
            np.testing.assert_allclose(client.regress(rows), expected, atol=1e-6)
            classes = client.classify(rows)
            assert [[label for label, _ in row] for row in classes] == [["0", "1"]] * len(rows)
            np.testing.assert_allclose([row[1][1] for row in classes], expected, atol=1e-6)
        finally:
            client.close()


def test_client_cli_classifies_rows(served, small_csv, capsys):
    from serving.clients.cli import main
    server, *_ = served
    assert main([str(small_csv), "--grpc", f"127.0.0.1:{server.grpc_port}", "--limit", "2", "--api", "classify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        scores = re.findall(r"class (\d) score ([\d.]+)", line)
        assert [label for label, _ in scores] == ["0", "1"], line
        assert sum(float(score) for _, score in scores) == pytest.approx(1, abs=2e-4), line


def test_signature_method_name_check_serves_each_signature_through_its_own_api(tmp_path, exported_model_dir):
    from models.signatures import _set_method_names
    base = tmp_path / NAME
    shutil.copytree(exported_model_dir, base / "5")
    _set_method_names(str(base / "5"), {"transform_features": "custom/transform"})
    server = ModelServer({NAME: ModelStore(NAME, str(base), poll_seconds=0)}, method_name_check=True).start()
    examples = [row_to_example(row, TYPES) for row in [{"fare": "10.5", "payment_type": "Cash"}]]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = classification_pb2.ClassificationRequest(model_spec=_spec("classification"))
            request.input.example_list.examples.extend(examples)
            assert len(stub.Classify(request, timeout=10).result.classifications) == 1
            request.model_spec.signature_name = "regression"  # a regress signature through Classify
            with pytest.raises(grpc.RpcError) as failure:
                stub.Classify(request, timeout=10)
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert failure.value.details() == ("Expected classification signature method_name to be "
                                               "tensorflow/serving/classify. Was: tensorflow/serving/regress")
        serialized = {"b64": base64.b64encode(examples[0].SerializeToString()).decode()}
        reply = _post(server, "predict", {"signature_name": "regression", "instances": [serialized]})
        assert reply.status_code == 200, reply.text  # Predict serves classify and regress signatures too
        reply = _post(server, "predict", {"signature_name": "transform_features", "instances": [serialized]})
        assert reply.status_code == 500
        assert reply.json()["error"].startswith("Expected prediction signature method_name to be one of {")
        assert reply.json()["error"].endswith("Was: custom/transform")
    finally:
        server.stop()
