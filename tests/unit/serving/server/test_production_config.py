"""What running the real tensorflow_model_server takes: configs that parse and agree."""
import json
import pathlib
import re

import grpc
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.deploy import production_config
from serving.deploy.production_config import labels_not_listed, main, models_config
from serving.server.errors import ServingError
from serving.server.metrics import ServerMetrics, read_monitoring_config
from serving.server.model_config import ModelEntry, check_labels_loadable, read_model_config
from serving.server.model_store import VersionPolicy

DEPLOY = pathlib.Path(production_config.__file__).resolve().parent  # serving/deploy/


def _version(folder: pathlib.Path, number: int):
    (folder / str(number)).mkdir(parents=True)
    (folder / str(number) / "saved_model.pb").write_bytes(b"")


def test_models_config_labels_the_newest_versions(tmp_path, capsys):
    for number in (100, 200, 300):
        _version(tmp_path, number)
    (tmp_path / "400").mkdir()  # half-written: not a version yet
    assert main(["--serving_dir", str(tmp_path), "--base_path", "/models/taxi-tips", "--canary"]) == 0
    config = text_format.Parse(capsys.readouterr().out, model_server_config_pb2.ModelServerConfig())
    model = config.model_config_list.config[0]
    assert (model.name, model.base_path) == ("taxi-tips", "/models/taxi-tips")
    assert dict(model.version_labels) == {"stable": 200, "canary": 300}
    assert list(model.model_version_policy.specific.versions) == [200, 300]


def test_models_config_needs_pushed_versions(tmp_path, capsys):
    assert main(["--serving_dir", str(tmp_path)]) == 2
    assert "no pushed versions" in capsys.readouterr().err
    _version(tmp_path, 1)
    with pytest.raises(ValueError, match="--canary needs two"):
        models_config("m", "/m", [1], canary=True)


@pytest.mark.parametrize("canary", [False, True])
def test_every_label_of_a_generated_config_names_a_version_it_loads(canary):
    config = text_format.Parse(models_config("m", "/m", [1, 2, 3], canary), model_server_config_pb2.ModelServerConfig())
    model = config.model_config_list.config[0]
    assert labels_not_listed(model) == {}
    assert set(model.version_labels.values()) == set(model.model_version_policy.specific.versions)


def test_generated_config_round_trips_through_the_rollback_edit(tmp_path):
    from pipeline.governance.rollback import _list_version, move_label

    serving_dir = tmp_path / "taxi-tips"
    for number in (100, 200, 300):
        _version(serving_dir, number)
    path = tmp_path / "models.config"
    path.write_text(models_config("taxi-tips", str(serving_dir), [100, 200, 300], canary=True))
    _version(serving_dir, 400)  # rollback's copy of 200
    _list_version(str(path), "taxi-tips", 400)
    listed = read_model_config(str(path))
    assert listed[0].labels == {"stable": 200, "canary": 300} and listed[0].policy.versions == (200, 300, 400)
    check_labels_loadable(listed)
    move_label(str(path), "taxi-tips", "stable", 400)
    [entry] = read_model_config(str(path))
    assert (entry.name, entry.base_path) == ("taxi-tips", str(serving_dir))
    assert entry.labels == {"stable": 400, "canary": 300} and entry.policy.versions == (200, 300, 400)
    check_labels_loadable([entry])  # what our server checks before it applies a config
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    assert labels_not_listed(config.model_config_list.config[0]) == {}
    assert text_format.MessageToString(config) == path.read_text()


def test_our_server_refuses_a_label_on_a_version_the_config_does_not_load(tmp_path):
    for number in (1, 2):
        _version(tmp_path, number)
    unlisted = ModelEntry("taxi-tips", str(tmp_path), VersionPolicy("specific", versions=(1,)), {"stable": 2})
    missing = ModelEntry("taxi-tips", str(tmp_path), VersionPolicy("all"), {"stable": 3})
    for entry, version in ((unlisted, 2), (missing, 3)):
        with pytest.raises(ServingError) as refused:
            check_labels_loadable([entry])
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.message == (f"Request to assign label to version {version} of model taxi-tips, "
                                         "which is not currently available for inference")
    check_labels_loadable([ModelEntry("taxi-tips", str(tmp_path), VersionPolicy("latest", count=2), {"stable": 1})])


def test_shipped_configs_parse():
    text_format.Parse((DEPLOY / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    assert read_monitoring_config(str(DEPLOY / "monitoring.config")) == "/monitoring/prometheus/metrics"
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    command = compose["services"]["tensorflow-serving"]["command"]
    assert "--model_name=taxi-tips" in command and "--rest_api_port=8501" in command
    deployment, config_map = yaml.safe_load_all((DEPLOY / "k8s" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "/v1/models/taxi-tips" in " ".join(container["readinessProbe"]["exec"]["command"])
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    text_format.Parse(config_map["data"]["models.config"], model_server_config_pb2.ModelServerConfig())
    service = yaml.safe_load((DEPLOY / "k8s" / "service.yaml").read_text())
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}


def test_dashboard_queries_metrics_the_server_exports():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exported = ServerMetrics().exposition().decode()
    families = set(re.findall(r"^# TYPE (\S+) ", exported, flags=re.M))
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r'"(:tensorflow:[^"]+)"|(model_server_\w+)', target["expr"])
               for name in name if name}
    assert queried
    for name in queried:
        assert any(name.startswith(family) for family in families), name
