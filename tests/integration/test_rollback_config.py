"""Rollback against the model config production_config generates, applied by the server's own config poller.

`python -m serving.server --model_config_file ... --model_config_file_poll_wait_seconds ...` runs as
its own process on free loopback ports, as in production; the pushes are recorded in a real ML
Metadata store, and the versions are copies of one exported model (told apart by the version in
the response's model_spec).
"""
from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess
import sys
import time

import grpc
import portpicker
import pytest
import requests
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from tfx.types import standard_artifacts

from pipeline import artifacts
from pipeline.config import PipelineConfig
from pipeline.governance.rollback import rollback
from serving.deploy.production_config import models_config
from serving.server.model_store import list_versions
from tests.conftest import REPO
from tests.services.loopback_services import stop_process
from tests.unit.pipeline.conftest import Recorder, open_writable_store

pytestmark = pytest.mark.slow
NAME = "taxi-tips"
POLL_SECONDS = 0.5  # the config file and the serving folder alike
NOT_AVAILABLE = ("Request to assign label to version {version} of model taxi-tips, which is not currently "
                 "available for inference")


@dataclasses.dataclass
class Deployment:
    config: PipelineConfig
    models_config: pathlib.Path
    log: pathlib.Path
    grpc_port: int
    rest_port: int

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"



def _push(recorder: Recorder, exported_model_dir: pathlib.Path, serving_dir: pathlib.Path, version: int) -> None:
    """What a run's Pusher leaves: the version folder, and a PushedModel in ML Metadata."""
    destination = serving_dir / str(version)
    shutil.copytree(exported_model_dir, destination)
    model = standard_artifacts.PushedModel()
    model.uri = str(destination)
    model.set_int_custom_property("pushed", 1)
    model.set_string_custom_property("pushed_destination", str(destination))
    model.set_string_custom_property("pushed_version", str(version))
    recorder.execution(f"run-{version}", artifacts.PUSHER, outputs={"pushed_model": [model]})


def _wait_for(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, exported_model_dir):
    root = tmp_path_factory.mktemp("rollback_config")
    config = PipelineConfig(output_root=str(root))
    recorder = Recorder(open_writable_store(pathlib.Path(config.metadata_path)))
    serving_dir = pathlib.Path(config.serving_dir)
    for version in (100, 200):
        _push(recorder, exported_model_dir, serving_dir, version)
    # As serving/README.md says: the config is generated from what was pushed (stable: the newest).
    path = root / "models.config"
    path.write_text(models_config(NAME, str(serving_dir), list_versions(str(serving_dir)), canary=False))
    log = root / "server.log"
    ports = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "serving.server", f"--model_config_file={path}",
             f"--model_config_file_poll_wait_seconds={POLL_SECONDS}",
             f"--file_system_poll_wait_seconds={POLL_SECONDS}", f"--port={ports[0]}", f"--rest_api_port={ports[1]}"],
            cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
    deployed = Deployment(config, path, log, *ports)
    try:
        def up() -> bool:
            assert server.poll() is None, log.read_text()
            try:
                return requests.get(f"{deployed.rest}/v1/models/{NAME}", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        assert _wait_for(up, 240), log.read_text()
        yield deployed
    finally:
        stop_process(server)


def _stable_version(deployed: Deployment) -> int:
    """The version that answers a predict call for `stable` (gRPC, its response's model_spec)."""
    with grpc.insecure_channel(deployed.grpc) as channel:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME, version_label="stable"))
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([b""]))
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30).model_spec.version.value


def _states(deployed: Deployment) -> dict[int, str]:
    reply = requests.get(f"{deployed.rest}/v1/models/{NAME}", timeout=10).json()
    return {int(status["version"]): status["state"] for status in reply["model_version_status"]}


def _labels(deployed: Deployment) -> dict[str, int]:
    config = text_format.Parse(deployed.models_config.read_text(), model_server_config_pb2.ModelServerConfig())
    return dict(config.model_config_list.config[0].version_labels)


def _listed(deployed: Deployment) -> list[int]:
    config = text_format.Parse(deployed.models_config.read_text(), model_server_config_pb2.ModelServerConfig())
    return list(config.model_config_list.config[0].model_version_policy.specific.versions)


def test_the_generated_config_serves_stable_from_the_newest_push(deployment):
    assert _listed(deployment) == [200] and _labels(deployment) == {"stable": 200}
    assert _stable_version(deployment) == 200
    assert _states(deployment) == {200: "AVAILABLE"}


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_rollback_moves_stable_to_the_copy_once_the_server_has_loaded_it(deployment, api):
    before = _stable_version(deployment)
    to_version = "100" if api == "rest" else "200"  # and back again
    new_version = rollback(deployment.config, to_version, model_config_path=str(deployment.models_config),
                           server=getattr(deployment, api), wait_seconds=120)
    assert _labels(deployment)["stable"] == new_version
    assert new_version in _listed(deployment) and before in _listed(deployment)
    # The poller applies the label move at its next poll.
    assert _wait_for(lambda: _stable_version(deployment) == new_version, 30), deployment.log.read_text()
    metadata = requests.get(f"{deployment.rest}/v1/models/{NAME}/labels/stable/metadata", timeout=10).json()
    assert metadata["model_spec"]["version"] == str(new_version)
    assert _states(deployment)[new_version] == "AVAILABLE" and _states(deployment)[before] == "AVAILABLE"
    # Written in two steps, no config was ever refused.
    assert "not applied" not in deployment.log.read_text()


def _write_with_stable_at(deployed: Deployment, version: int, also_list: tuple[int, ...] = ()) -> str:
    """The one-step edit rollback used to make: `stable` moved, the version maybe not listed."""
    config = text_format.Parse(deployed.models_config.read_text(), model_server_config_pb2.ModelServerConfig())
    entry = config.model_config_list.config[0]
    entry.version_labels["stable"] = version
    entry.model_version_policy.specific.versions.extend(also_list)
    text = text_format.MessageToString(config)
    deployed.models_config.with_suffix(".next").write_text(text)
    deployed.models_config.with_suffix(".next").replace(deployed.models_config)
    return text


def test_a_label_on_a_version_that_is_not_loaded_gets_tf_servings_error_and_stable_keeps_serving(deployment):
    serving = _stable_version(deployment)
    good = deployment.models_config.read_text()
    assert 100 not in _listed(deployment)  # pushed and on disk, but not loaded
    refused = NOT_AVAILABLE.format(version=100)
    try:
        # Through the config poller: refused at every poll, logged, nothing changed.
        text = _write_with_stable_at(deployment, 100)
        assert _wait_for(lambda: deployment.log.read_text().count(refused) >= 2, 30), deployment.log.read_text()
        assert _stable_version(deployment) == serving
        assert 100 not in _states(deployment)
        # Through HandleReloadConfigRequest: TF Serving's code and message.
        with grpc.insecure_channel(deployment.grpc) as channel, pytest.raises(grpc.RpcError) as failure:
            model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(
                    config=text_format.Parse(text, model_server_config_pb2.ModelServerConfig())), timeout=60)
        assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert failure.value.details() == refused
        assert _stable_version(deployment) == serving
    finally:
        deployment.models_config.write_text(good)  # what the server applied last: nothing to reload


def test_a_label_move_onto_a_version_that_fails_to_load_is_held_until_it_loads(deployment, exported_model_dir):
    serving = _stable_version(deployment)
    serving_dir = pathlib.Path(deployment.config.serving_dir)
    broken = serving_dir / "300"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    # Listed and labelled at once, and its load fails: the label stays where it was.
    _write_with_stable_at(deployment, 300, also_list=(300,))
    refused = NOT_AVAILABLE.format(version=300)
    assert _wait_for(lambda: refused in deployment.log.read_text(), 30), deployment.log.read_text()
    assert _stable_version(deployment) == serving
    assert _states(deployment)[300] == "END" and _states(deployment)[serving] == "AVAILABLE"
    # The version fixed (a complete copy renamed into place): it loads, and the held move applies.
    broken.rename(serving_dir / ".300.broken")
    shutil.copytree(exported_model_dir, serving_dir / ".300.staging")
    (serving_dir / ".300.staging").rename(serving_dir / "300")
    assert _wait_for(lambda: _stable_version(deployment) == 300, 90), deployment.log.read_text()
