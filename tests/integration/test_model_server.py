"""The model server against TF Serving's contract, through plain HTTP and the official
gRPC stubs, on loopback ports."""
from __future__ import annotations

import base64
import json
import shutil
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from models import features as F
from models.signatures import OUTPUT_KEY
from serving.clients.request_encoding import read_csv_rows, row_to_example, rows_to_named_features
from serving.server.metrics import DEFAULT_PATH as METRICS_PATH
from serving.server.metrics import ServerMetrics, read_monitoring_config
from serving.server.model_server import ModelServer
from serving.server.model_store import ModelStore

pytestmark = pytest.mark.slow
NAME = "taxi-tips"
TYPES = F.feature_types()
# One row of every raw feature, each at its default: a valid serving_raw instance.
RAW_ROW = {name: values[0] for name, values in rows_to_named_features([{}], TYPES).items()}


def _raw_rows(**changes) -> bytes:
    return json.dumps({"signature_name": "serving_raw", "instances": [RAW_ROW, {**RAW_ROW, **changes}]}).encode()


def _raw_columns(**changes) -> bytes:
    columns = {name: [value] for name, value in RAW_ROW.items()}
    return json.dumps({"signature_name": "serving_raw", "inputs": {**columns, **changes}}).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory, exported_model_dir, small_csv):
    base = tmp_path_factory.mktemp("serving") / NAME
    shutil.copytree(exported_model_dir, base / "1")
    metrics = ServerMetrics()
    store = ModelStore(NAME, str(base), poll_seconds=0.2,
                       on_event=lambda model, version, event: metrics.loads.labels(model, str(version), event).inc())
    server = ModelServer({NAME: store}, metrics=metrics, metrics_path=METRICS_PATH).start()
    rows = list(read_csv_rows(str(small_csv)))[:20]
    expected = tf.saved_model.load(str(exported_model_dir)).signatures["serving_default"](
        examples=tf.constant([row_to_example(r, TYPES).SerializeToString() for r in rows]))[OUTPUT_KEY].numpy()
    yield server, base, rows, expected
    server.stop()


@pytest.fixture
def fresh(tmp_path, exported_model_dir, served):
    """A server of its own at version 1, for a test that adds versions: `served` stays at version 1 for the
    others, whatever order they run in."""
    base = tmp_path / NAME
    shutil.copytree(exported_model_dir, base / "1")
    metrics = ServerMetrics()
    store = ModelStore(NAME, str(base), poll_seconds=0.2,
                       on_event=lambda model, version, event: metrics.loads.labels(model, str(version), event).inc())
    server = ModelServer({NAME: store}, metrics=metrics, metrics_path=METRICS_PATH).start()
    _, _, rows, expected = served
    yield server, base, rows, expected
    server.stop()


def _url(server, path):
    return f"http://127.0.0.1:{server.rest_port}{path}"


def test_rest_status_reports_the_version_available(served):
    server, *_ = served
    reply = requests.get(_url(server, f"/v1/models/{NAME}"), timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_rest_row_predict_with_b64_examples_matches_the_model(served):
    server, _, rows, expected = served
    instances = [{"b64": base64.b64encode(row_to_example(r, TYPES).SerializeToString()).decode()} for r in rows]
    reply = requests.post(_url(server, f"/v1/models/{NAME}:predict"), json={"instances": instances}, timeout=10)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(np.array(reply.json()["predictions"]), expected, atol=1e-6)


def test_rest_columnar_predict_with_named_features_matches_the_model(served):
    server, _, rows, expected = served
    body = {"signature_name": "serving_raw", "inputs": rows_to_named_features(rows, TYPES)}
    reply = requests.post(_url(server, f"/v1/models/{NAME}/versions/1:predict"), json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(np.array(reply.json()["outputs"]), expected, atol=1e-6)


def test_rest_row_predict_with_named_features(served):
    server, _, rows, expected = served
    columns = rows_to_named_features(rows[:3], TYPES)
    instances = [{name: values[i] for name, values in columns.items()} for i in range(3)]
    reply = requests.post(_url(server, f"/v1/models/{NAME}:predict"),
                          json={"signature_name": "serving_raw", "instances": instances}, timeout=10)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(np.array(reply.json()["predictions"]), expected[:3], atol=1e-6)


@pytest.mark.parametrize("path, body, status, message", [
    (f"/v1/models/{NAME}:predict", b"", 400, "JSON Parse error: The document is empty"),
    (f"/v1/models/{NAME}:predict", b"{bad", 400, "JSON Parse error"),
    (f"/v1/models/{NAME}:predict", b"[1]", 400, "Is not object"),
    (f"/v1/models/{NAME}:predict", b'{"instances": []}', 400, "No values in 'instances' array"),
    (f"/v1/models/{NAME}:predict", b'{"x": 1}', 400, "Missing 'inputs' or 'instances' key"),
    (f"/v1/models/{NAME}:predict", b'{"instances": [1], "inputs": [1]}', 400, "expecting only one of"),
    (f"/v1/models/{NAME}:predict", b'{"signature_name": "nope", "instances": [1]}', 400,
     'Serving signature name: "nope" not found in signature def'),
    (f"/v1/models/{NAME}:predict", b'{"signature_name": "serving_raw", "instances": [{"fare": 1}]}', 400,
     "keys must be equal to"),
    (f"/v1/models/{NAME}:predict", b'{"signature_name": "serving_raw", "inputs": {"fare": [1.0]}}', 400,
     "Missing named input"),
    (f"/v1/models/{NAME}:predict", b'{"instances": [{"b64": "***"}]}', 400, "Unable to base64 decode"),
    ("/v1/models/other:predict", b'{"instances": [1]}', 404, "Servable not found for request: Latest(other)"),
    (f"/v1/models/{NAME}/versions/7:predict", b'{"instances": [1]}', 404,
     f"Servable not found for request: Specific({NAME}, 7)"),
    ("/v1/models/..%2F..%2Fetc:predict", b'{"instances": [1]}', 404, "Servable not found"),
    # Wrong dtypes: each value is checked against the input it feeds, and the element named.
    (f"/v1/models/{NAME}:predict", _raw_rows(fare="x"), 400, "Failed to process element: 1 key: fare of "
     "'instances' list. Error: INVALID_ARGUMENT: JSON Value: \"x\" Type: String is not of expected type: float"),
    (f"/v1/models/{NAME}:predict", _raw_rows(trip_start_hour=1.5), 400,
     "JSON Value: 1.5 Type: Number is not of expected type: int64"),
    (f"/v1/models/{NAME}:predict", _raw_rows(trip_seconds=3.0), 400,
     "JSON Value: 3.0 Type: Number is not of expected type: int64"),
    (f"/v1/models/{NAME}:predict", _raw_rows(company=7), 400, "JSON Value: 7 Type: Number is not of expected type: "
     "string"),
    (f"/v1/models/{NAME}:predict", _raw_rows(fare=True), 400, "JSON Value: true Type: True is not of expected type: "
     "float"),
    (f"/v1/models/{NAME}:predict", _raw_rows(fare=2 ** 25 + 1), 400,
     "Cannot convert JSON value: 33554433 to float without loss of precision."),
    (f"/v1/models/{NAME}:predict", b'{"instances": [1.0]}', 400,
     "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: 1.0 Type: Number is "
     "not of expected type: string"),
    (f"/v1/models/{NAME}:predict", _raw_columns(fare=["x"]), 400,
     'JSON Value: "x" Type: String is not of expected type: float'),
    # Missing and extra inputs, and tensors whose shapes do not agree.
    (f"/v1/models/{NAME}:predict", _raw_rows(driver_id=1), 400,
     "Failed to process element: 1 key: driver_id of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does "
     "not have named input: driver_id"),
    (f"/v1/models/{NAME}:predict", _raw_rows(fare=[1.0]), 400,
     "Failed to process element: 1 key: fare of 'instances' list. Error: INVALID_ARGUMENT: Expecting shape [] but "
     "got: [1]"),
    (f"/v1/models/{NAME}:predict", _raw_columns(fare=[[1.0], 2.0]), 400, "JSON Value: 2.0 found at incorrect level"),
    (f"/v1/models/{NAME}:predict", b'{"signature_name": 3, "instances": [1]}', 400,
     "'signature_name' key must be a string value."),
    # Bytes after the body are a parse error, in rapidjson's words.
    (f"/v1/models/{NAME}:predict", b'{"instances": [1]} {}', 400,
     "JSON Parse error: The document root must not be followed by other values. at offset: 19"),
    (f"/v1/models/{NAME}/versions/99999999999999999999:predict", b'{"instances": [1]}', 400,
     "Failed to convert version: 99999999999999999999 to numeric."),
])
def test_rest_bad_requests_get_the_contract_error(served, path, body, status, message):
    server, *_ = served
    reply = requests.post(_url(server, path), data=body, timeout=10)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    assert requests.get(_url(server, f"/v1/models/{NAME}"), timeout=10).status_code == 200, "server must stay up"


def test_rest_columnar_request_ignores_keys_no_input_has(served):
    server, *_ = served
    url = _url(server, f"/v1/models/{NAME}:predict")
    plain = requests.post(url, data=_raw_columns(), timeout=10)
    with_extra = requests.post(url, data=_raw_columns(driver_id=[1]), timeout=10)
    assert plain.status_code == with_extra.status_code == 200, with_extra.text
    assert with_extra.json() == plain.json()


def test_rest_body_over_the_size_limit_gets_a_json_error(served):
    server, *_ = served
    reply = requests.post(_url(server, f"/v1/models/{NAME}:predict"), data=b" " * (64 * 1024 * 1024 + 1),
                          timeout=60)
    assert reply.status_code == 413
    assert reply.json() == {"error": "The request body is larger than this server's limit of 67108864 bytes: "
                                     "send fewer rows per request."}
    assert requests.get(_url(server, f"/v1/models/{NAME}"), timeout=10).status_code == 200, "server must stay up"


def _predict_request(name=NAME, **inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name))
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def _with_spec(request: predict_pb2.PredictRequest, **spec) -> predict_pb2.PredictRequest:
    for field, value in spec.items():
        if field == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, field, value)
    return request


EXAMPLE = row_to_example({"fare": "5.0"}, TYPES).SerializeToString()


def _malformed_request() -> predict_pb2.PredictRequest:
    """A TensorProto that is no tensor (Tensor::FromProto fails): 3 bytes of content for 1 float."""
    request = _predict_request()
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([1.0]))
    request.inputs["examples"].tensor_content = b"abc"
    return request


@pytest.mark.parametrize("request_, code, message", [
    (_predict_request(examples=[1.0, 2.0]), grpc.StatusCode.INVALID_ARGUMENT,
     "Expects arg[0] to be string but float is provided"),
    (_predict_request(), grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 0!=1 len({}) != len({examples}). Sent extra: {}. "
     "Missing but required: {examples}."),
    (_predict_request(examples=[EXAMPLE], x=[1.0]), grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 2!=1 len({examples,x}) != len({examples}). Sent extra: {x}. "
     "Missing but required: {}."),
    (_predict_request(example=[EXAMPLE]), grpc.StatusCode.INVALID_ARGUMENT,
     "Signature input alias: examples not found in request"),
    (_predict_request(name="", examples=[EXAMPLE]), grpc.StatusCode.INVALID_ARGUMENT,
     "ModelSpec has no name specified."),
    (_predict_request(name="../etc", examples=[EXAMPLE]), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(../etc)"),
    (_with_spec(_predict_request(examples=[EXAMPLE]), version=7), grpc.StatusCode.NOT_FOUND,
     f"Servable not found for request: Specific({NAME}, 7)"),
    (_with_spec(_predict_request(examples=[EXAMPLE]), version_label="nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: nope"),
    (_with_spec(_predict_request(examples=[EXAMPLE]), signature_name="nope"), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    (_predict_request(examples=[b"not an example"]), grpc.StatusCode.INVALID_ARGUMENT, "not an example"),
    (_malformed_request(), grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: examples"),
], ids=["wrong dtype", "no input", "extra input", "wrong input name", "no model name", "../ in the model name",
        "unknown version", "unknown label", "unknown signature", "not a tf.Example", "malformed tensor"])
def test_grpc_bad_requests_get_the_contract_status(served, request_, code, message):
    server, *_ = served
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.Predict(request_, timeout=10)
        assert failure.value.code() == code
        assert message in failure.value.details()
        assert stub.Predict(_predict_request(examples=[EXAMPLE]), timeout=10).outputs[OUTPUT_KEY].float_val, \
            "server must stay up"


def test_grpc_message_over_the_size_limit_is_refused(served):
    server, *_ = served
    options = [("grpc.max_send_message_length", 128 * 1024 * 1024)]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.Predict(_predict_request(examples=[b"x" * (64 * 1024 * 1024 + 1)]), timeout=60)
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.Predict(_predict_request(examples=[EXAMPLE]), timeout=10).outputs[OUTPUT_KEY].float_val


def test_rest_routing_errors(served):
    server, *_ = served
    assert requests.get(_url(server, "/v1/models"), timeout=10).json() == {"error": "Missing model name in request."}
    reply = requests.delete(_url(server, f"/v1/models/{NAME}"), timeout=10)
    assert reply.status_code == 400 and reply.json()["error"].startswith("Malformed request: DELETE")
    elsewhere = requests.get(_url(server, "/elsewhere"), timeout=10)
    assert elsewhere.status_code == 404 and "<TITLE>404 Not Found</TITLE>" in elsewhere.text
    reply = requests.get(_url(server, f"/v1/models/{NAME}/versions/9"), timeout=10)
    assert reply.status_code == 404 and reply.json() == {"error": f"Could not find version 9 of model {NAME}"}


def test_grpc_predict_and_status_through_the_official_stubs(served):
    server, _, rows, expected = served
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME))
        request.inputs["examples"].CopyFrom(
            tf.make_tensor_proto([row_to_example(r, TYPES).SerializeToString() for r in rows]))
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs[OUTPUT_KEY]), expected, atol=1e-6)
        assert (response.model_spec.name, response.model_spec.signature_name,
                response.model_spec.version.value) == (NAME, "serving_default", 1)
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=NAME)), timeout=10)
        assert [(s.version, s.state) for s in status.model_version_status] == [(1, 30)]
        with pytest.raises(grpc.RpcError) as failure:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="other")), timeout=10)
        assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def _wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_half_written_and_corrupt_versions_never_replace_the_serving_one(fresh):
    server, base, rows, _ = fresh
    (base / "5" / "variables").mkdir(parents=True)  # a push still copying: no saved_model.pb yet
    (base / "6").mkdir()
    (base / "6" / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert _wait_for(lambda: any(s["version"] == "6" and s["state"] == "END" for s in
                                 requests.get(_url(server, f"/v1/models/{NAME}"), timeout=10).json()
                                 ["model_version_status"]))
    statuses = {s["version"]: s for s in requests.get(_url(server, f"/v1/models/{NAME}"), timeout=10)
                .json()["model_version_status"]}
    assert "5" not in statuses and statuses["1"]["state"] == "AVAILABLE"
    assert statuses["6"]["status"]["error_message"]
    body = {"signature_name": "serving_raw", "inputs": rows_to_named_features(rows[:2], TYPES)}
    assert requests.post(_url(server, f"/v1/models/{NAME}:predict"), json=body, timeout=10).status_code == 200
    shutil.rmtree(base / "6")


def _states(server) -> dict[str, str]:
    reply = requests.get(_url(server, f"/v1/models/{NAME}"), timeout=10).json()
    return {s["version"]: s["state"] for s in reply["model_version_status"]}


def test_a_new_version_is_loaded_and_then_served(fresh, exported_model_dir):
    server, base, rows, _ = fresh
    shutil.copytree(exported_model_dir, base / "10")
    assert _wait_for(lambda: _states(server).get("10") == "AVAILABLE")
    body = {"signature_name": "serving_raw", "inputs": rows_to_named_features(rows[:1], TYPES)}
    reply = requests.post(_url(server, f"/v1/models/{NAME}:predict"), json=body, timeout=10)
    assert reply.status_code == 200
    assert _states(server)["1"] == "END", "the old version is unloaded once the new one serves"


def test_grpc_and_rest_clients_agree_with_the_model(served):
    from serving.clients import GrpcClient, RestClient
    server, _, rows, expected = served
    grpc_client = GrpcClient(f"127.0.0.1:{server.grpc_port}", NAME, TYPES)
    rest_client = RestClient(f"http://127.0.0.1:{server.rest_port}", NAME, TYPES)
    try:
        np.testing.assert_allclose(grpc_client.predict(rows), expected.reshape(-1), atol=1e-6)
        np.testing.assert_allclose(rest_client.predict(rows), expected.reshape(-1), atol=1e-6)
    finally:
        grpc_client.close()
        rest_client.close()


def test_grpc_client_retries_then_reports_an_unreachable_server():
    import socket

    from serving.clients import GrpcClient
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    client = GrpcClient(f"127.0.0.1:{free_port}", NAME, TYPES, timeout=2, retries=2)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as failure:
        client.predict([{"fare": "1.0"}])
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 20
    client.close()


def test_client_cli_prints_a_probability_per_row(served, small_csv, capsys):
    from serving.clients.cli import main
    server, *_ = served
    assert main([str(small_csv), "--rest", f"http://127.0.0.1:{server.rest_port}", "--limit", "3",
                 "--output_key", OUTPUT_KEY]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("tip_probability 0." in line for line in lines)
    assert main([str(small_csv), "--grpc", f"127.0.0.1:{server.grpc_port}", "--model", "nope"]) == 1
    assert "Servable not found" in capsys.readouterr().err


def test_prometheus_metrics_count_requests_per_version_and_api(fresh):
    server, base, rows, _ = fresh
    body = {"signature_name": "serving_raw", "inputs": rows_to_named_features(rows[:2], TYPES)}
    assert requests.post(_url(server, f"/v1/models/{NAME}:predict"), json=body, timeout=10).status_code == 200
    requests.post(_url(server, "/v1/models/other:predict"), json=body, timeout=10)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            _predict_request(examples=[EXAMPLE]), timeout=10)
    (base / "6").mkdir()
    (base / "6" / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert _wait_for(lambda: _states(server).get("6") == "END")
    reply = requests.get(_url(server, METRICS_PATH), timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    text = reply.text
    assert "# TYPE" in text
    assert f':tensorflow:serving:request_count_total{{model_name="{NAME}",status="OK"}}' in text
    # Models the server does not serve share one label: clients cannot add series without bound.
    assert ':tensorflow:serving:request_count_total{model_name="__unknown__",status="NOT_FOUND"}' in text
    assert 'model_name="other"' not in text
    assert f'model_server_requests_total{{api="predict",entrypoint="REST",model="{NAME}",status="OK",version="1"}}' \
        in text
    assert f'model_server_request_latency_seconds_bucket{{api="predict",entrypoint="GRPC",le="0.0005",model="{NAME}"' \
        in text
    assert f'model_server_load_events_total{{event="loaded",model="{NAME}",version="1"}} 1.0' in text
    # Failed loads are tried again, so the count may have grown.
    assert f'model_server_load_events_total{{event="load_failed",model="{NAME}",version="6"}} ' in text


def test_monitoring_config_file(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config {\n  enable: true,\n  path: "/metrics"\n}\n')
    assert read_monitoring_config(str(path)) == "/metrics"
    path.write_text("prometheus_config { enable: true }")
    assert read_monitoring_config(str(path)) == METRICS_PATH
    path.write_text("prometheus_config { enable: false }")
    assert read_monitoring_config(str(path)) is None
    path.write_text("garbage")
    with pytest.raises(ValueError, match="prometheus_config"):
        read_monitoring_config(str(path))


def test_metadata_lists_the_signatures_over_rest_and_grpc(served):
    from tensorflow_serving.apis import get_model_metadata_pb2
    server, *_ = served
    reply = requests.get(_url(server, f"/v1/models/{NAME}/metadata"), timeout=10)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) >= {"serving_default", "serving_raw", "transform_features"}
    assert signatures["serving_default"]["inputs"]["examples"]["dtype"] == "DT_STRING"
    shape = signatures["serving_default"]["inputs"]["examples"]["tensor_shape"]
    assert shape["unknown_rank"] is False and all(set(dim) == {"size", "name"} for dim in shape["dim"])
    assert signatures["serving_default"]["defaults"] == {}
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert body["model_spec"]["name"] == NAME
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(name=NAME), metadata_field=["signature_def"]), timeout=10)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        assert "serving_raw" in signature_map.signature_def
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=model_pb2.ModelSpec(name=NAME)), timeout=10)
        assert "at least one metadata_field" in failure.value.details()


def test_warmup_requests_are_replayed_and_a_failing_warmup_blocks_the_version(fresh, exported_model_dir):
    from serving.clients.request_encoding import serialized_examples
    from serving.server.warmup import write_warmup_requests
    server, base, rows, _ = fresh
    staging = base.parent / "staging-20"
    shutil.copytree(exported_model_dir, staging)
    write_warmup_requests(str(staging), serialized_examples(rows, TYPES), NAME)
    staging.rename(base / "20")
    assert _wait_for(lambda: _states(server).get("20") == "AVAILABLE")
    # A version whose warmup requests break its signature never serves.
    broken = base.parent / "staging-30"
    shutil.copytree(exported_model_dir, broken)
    path = write_warmup_requests(str(broken), serialized_examples(rows[:2], TYPES), NAME)
    with tf.io.TFRecordWriter(path) as writer:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME))
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([b"not an example"]))
        from tensorflow_serving.apis import prediction_log_pb2
        writer.write(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    broken.rename(base / "30")
    assert _wait_for(lambda: _states(server).get("30") == "END")
    assert _states(server)["20"] == "AVAILABLE"


def test_hot_reload_under_load_fails_no_request(fresh, exported_model_dir):
    import threading

    from serving.clients import GrpcClient
    server, base, rows, _ = fresh
    client = GrpcClient(f"127.0.0.1:{server.grpc_port}", NAME, TYPES)
    failures, answered, stop = [], [0], threading.Event()

    def send():
        for _ in range(2000):  # bounded
            if stop.is_set():
                return
            try:
                client.predict(rows[:4])
                answered[0] += 1
            except Exception as error:  # counted: the assertion below shows them
                failures.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.5)
    staging = base.parent / "staging-40"
    shutil.copytree(exported_model_dir, staging)
    staging.rename(base / "40")
    assert _wait_for(lambda: _states(server).get("40") == "AVAILABLE")
    time.sleep(0.5)
    stop.set()
    sender.join(timeout=60)
    client.close()
    assert failures == [] and answered[0] > 10
    assert _states(server)["1"] == "END"


def test_server_command_on_a_port_in_use_says_so_and_exits(served):
    server, base, *_ = served
    import subprocess
    import sys
    result = subprocess.run(
        [sys.executable, "-m", "serving.server", f"--model_name={NAME}", f"--model_base_path={base}",
         f"--port={server.grpc_port}", "--rest_api_port=0", "--file_system_poll_wait_seconds=0"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"cannot listen on gRPC port {server.grpc_port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr
    assert requests.get(_url(server, f"/v1/models/{NAME}"), timeout=10).status_code == 200  # the first server serves on
