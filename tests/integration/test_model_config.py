"""Model config: version policies, labels (stable/canary), and reloading the config."""
from __future__ import annotations

import shutil

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from models import features as F
from serving.server.model_config import read_model_config
from serving.server.model_server import ModelServer, main

pytestmark = pytest.mark.slow
NAME = "taxi-tips"
TYPES = F.feature_types()
CONFIG = """model_config_list {{ config {{
  name: "taxi-tips" base_path: "{base}" model_platform: "tensorflow"
  model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
  version_labels {{ key: "stable" value: 1 }}
  version_labels {{ key: "canary" value: 2 }}
}} }}
"""


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, exported_model_dir):
    base = tmp_path_factory.mktemp("labels") / NAME
    for version in (1, 2, 3):
        shutil.copytree(exported_model_dir, base / str(version))
    config = base.parent / "models.config"
    config.write_text(CONFIG.format(base=base))
    server = ModelServer({})
    server.apply_config(read_model_config(str(config)), poll_seconds=0)
    server.start()
    yield server, base
    server.stop()


def _status(server) -> dict[str, str]:
    reply = requests.get(f"http://127.0.0.1:{server.rest_port}/v1/models/{NAME}", timeout=10).json()
    return {s["version"]: s["state"] for s in reply["model_version_status"]}


def _grpc_version(server, label: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME, version_label=label))
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([b""]))
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=10).model_spec.version.value


def test_specific_policy_loads_only_the_listed_versions(labelled):
    server, _ = labelled
    assert _status(server) == {"1": "AVAILABLE", "2": "AVAILABLE"}


def test_labels_pick_the_version_over_rest_and_grpc(labelled):
    server, _ = labelled
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/{NAME}/labels"
    reply = requests.post(f"{url}/canary:predict", json={"instances": [{"b64": ""}]}, timeout=10)
    assert reply.status_code == 200, reply.text
    assert requests.get(f"{url}/stable/metadata", timeout=10).json()["model_spec"]["version"] == "1"
    assert _grpc_version(server, "stable") == 1 and _grpc_version(server, "canary") == 2
    reply = requests.post(f"{url}/beta:predict", json={"instances": [{"b64": ""}]}, timeout=10)
    assert reply.status_code == 400 and reply.json()["error"] == "Unrecognized servable version label: beta"


def test_reload_config_moves_the_stable_label(labelled):
    server, base = labelled
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=NAME, base_path=str(base), model_platform="tensorflow")
    model.model_version_policy.specific.versions.extend([2, 3])
    model.version_labels["stable"] = 3
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
    assert response.status.error_code == 0
    assert _grpc_version(server, "stable") == 3
    assert _status(server) == {"1": "END", "2": "AVAILABLE", "3": "AVAILABLE"}
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel, pytest.raises(grpc.RpcError) as failure:
        model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(), timeout=10)
    assert "Only ModelConfigList is currently supported" in failure.value.details()


def test_server_flags_are_checked(tmp_path, capsys):
    assert main(["--model_name", NAME]) == 2
    assert "--model_base_path" in capsys.readouterr().err
    assert main(["--model_name", NAME, "--model_base_path", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 1 } }")
    assert main(["--model_config_file", str(bad)]) == 2
    assert "not a text ModelServerConfig" in capsys.readouterr().err


def test_grpc_health_service_reports_each_model(labelled):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    server, _ = labelled
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", NAME):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as failure:
            stub.Check(health_pb2.HealthCheckRequest(service="other"), timeout=10)
        assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def _logged_requests(tmp_path, exported_model_dir, small_csv, version: int, send) -> tuple[str, list[dict]]:
    """Serve the model as `version` with a request log and let send(gRPC client, REST client,
    rows) call it; (the log's path, the rows)."""
    from serving.clients import GrpcClient, RestClient
    from serving.clients.request_encoding import read_csv_rows
    from serving.server.model_store import ModelStore
    from serving.server.request_log import RequestLog
    base = tmp_path / NAME
    shutil.copytree(exported_model_dir, base / str(version))
    log_path = tmp_path / "logs" / "requests.tfrecord"
    server = ModelServer({NAME: ModelStore(NAME, str(base), poll_seconds=0)},
                         request_log=RequestLog(str(log_path))).start()
    rows = list(read_csv_rows(str(small_csv)))[:6]
    try:
        send(GrpcClient(f"127.0.0.1:{server.grpc_port}", NAME, TYPES),
             RestClient(f"http://127.0.0.1:{server.rest_port}", NAME, TYPES), rows)
    finally:
        server.stop()
    return str(log_path), rows


def test_request_log_records_served_requests_for_the_skew_check(tmp_path, exported_model_dir, small_csv):
    from serving.server.request_log import RequestLog, logged_examples, read_predict_logs

    def send(grpc_client, rest_client, rows):
        grpc_client.predict(rows[:4])
        rest_client.predict(rows[4:])

    log_path, rows = _logged_requests(tmp_path, exported_model_dir, small_csv, 7, send)
    logs = list(read_predict_logs(log_path))
    assert len(logs) == 2 and {log.request.model_spec.version.value for log in logs} == {7}
    assert all("tip_probability" in log.response.outputs for log in logs)
    examples = list(logged_examples(log_path))
    assert len(examples) == 6
    assert examples[0].features.feature["fare"].float_list.value[0] == pytest.approx(float(rows[0]["fare"]))
    with pytest.raises(ValueError, match="sample rate"):
        RequestLog(str(tmp_path / "x"), sample_rate=0)


def test_request_log_keeps_classify_and_regress_calls(tmp_path, exported_model_dir, small_csv):
    from serving.server.request_log import logged_examples, read_logs

    def send(grpc_client, rest_client, rows):
        grpc_client.classify(rows[:2])
        rest_client.regress(rows[2:])

    log_path, rows = _logged_requests(tmp_path, exported_model_dir, small_csv, 4, send)
    entries = list(read_logs(log_path))
    assert [entry.WhichOneof("log_type") for entry in entries] == ["classify_log", "regress_log"]
    assert len(entries[0].classify_log.response.result.classifications) == 2
    assert len(entries[1].regress_log.response.result.regressions) == 4
    assert entries[1].regress_log.request.model_spec.version.value == 4
    fares = [example.features.feature["fare"].float_list.value[0] for example in logged_examples(log_path)]
    assert fares == pytest.approx([float(row["fare"]) for row in rows])


def test_traffic_split_between_labels_shows_in_per_version_metrics(labelled, small_csv):
    from serving.clients import GrpcClient, TrafficSplitClient
    from serving.clients.request_encoding import read_csv_rows
    from serving.server.model_config import ModelEntry
    from serving.server.model_store import VersionPolicy
    server, base = labelled
    server.apply_config([ModelEntry(NAME, str(base), VersionPolicy("specific", versions=(2, 3)),
                                    {"stable": 3, "canary": 2})], poll_seconds=0)
    target = f"127.0.0.1:{server.grpc_port}"
    split = TrafficSplitClient({"stable": GrpcClient(target, NAME, TYPES, version_label="stable"),
                                "canary": GrpcClient(target, NAME, TYPES, version_label="canary")},
                               {"stable": 0.8, "canary": 0.2}, seed=7)
    row = list(read_csv_rows(str(small_csv)))[:1]
    before = server.metrics.requests.labels(NAME, "2", "predict", "GRPC", "OK")._value.get()
    sent = [split.predict(row)[0] for _ in range(200)]
    split.close()
    assert 120 < sent.count("stable") < 190
    canary_requests = server.metrics.requests.labels(NAME, "2", "predict", "GRPC", "OK")._value.get() - before
    assert canary_requests == sent.count("canary")
    with pytest.raises(ValueError, match="weight"):
        TrafficSplitClient({"stable": None}, {"stable": 0})
