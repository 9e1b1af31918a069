"""`taxi-pipeline release` against a real model server process that routes by its routing file.

The server (`python -m serving.server`) polls a models.config (labels stable and canary) and a
routing file on loopback ports, and logs every request; traffic comes from the project's REST
client in background threads, with outcomes written as the feedback loop's outcome files. The
versions are small SavedModels whose behaviour is known: the stable one scores a feature `x`
that drives the label; canaries are the same model (healthy), one that fails on a fifth of the
rows, one whose scores are shifted, and one that scores an unrelated feature (same score
distribution, no skill).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import portpicker
import pytest
import requests
import tensorflow as tf
from tfx.types import standard_artifacts

from pipeline import artifacts, metadata
from pipeline.config import PipelineConfig
from pipeline.governance import lineage, runs
from pipeline.release import release_record
from pipeline.release.release import Settings, run_release
from pipeline.release.routing_file import read_routing
from serving.clients.rest_client import RestClient
from tests.conftest import REPO
from tests.services.loopback_services import stop_process
from tests.unit.pipeline.conftest import Recorder, open_writable_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
NAME = "taxi-tips"
POLL = 0.3
STABLE, HEALTHY, FAILING, SHIFTED, NO_SKILL, HEALTHY_TOO = 1, 2, 3, 4, 5, 6
FEATURES = {"x": "float", "z": "float"}


def _save_toy(path: pathlib.Path, feature: str = "x", offset: float = 0.0, fail_above: float | None = None) -> None:
    """A SavedModel whose serving_default takes serialized tf.Examples and returns one probability per row."""
    spec = {"x": tf.io.FixedLenFeature([], tf.float32, 0.0), "z": tf.io.FixedLenFeature([], tf.float32, 0.0)}

    class Toy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            value = tf.io.parse_example(examples, spec)[feature]
            if fail_above is not None:
                tf.debugging.assert_less(value, fail_above, message="the toy canary fails on this row")
            return {"probabilities": tf.sigmoid(8.0 * (value - 0.5) + offset)}

    module = Toy()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})



def _models_config(serving_dir: pathlib.Path, stable: int, canary: int) -> str:
    versions = "".join(f"        versions: {v}\n" for v in (STABLE, HEALTHY, FAILING, SHIFTED, NO_SKILL,
                                                                        HEALTHY_TOO))
    labels = "".join(f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in (("canary", canary),
                                                                                     ("stable", stable)))
    return (f'model_config_list {{\n  config {{\n    name: "{NAME}"\n    base_path: "{serving_dir}"\n'
            f'    model_platform: "tensorflow"\n    model_version_policy {{\n      specific {{\n{versions}'
            f"      }}\n    }}\n{labels}  }}\n}}\n")


@dataclasses.dataclass
class Deployment:
    config: PipelineConfig
    models_config: pathlib.Path
    routing: pathlib.Path
    rest: str
    log: pathlib.Path

    def label(self, label: str) -> int | None:
        reply = requests.get(f"{self.rest}/v1/models/{NAME}/labels/{label}/metadata", timeout=5)
        return int(reply.json()["model_spec"]["version"]) if reply.ok else None

    def release(self, canary: int, **overrides) -> Settings:
        """Labels stable -> 1 and canary -> `canary`, as production_config --canary writes them."""
        self.label_versions(STABLE, canary)
        values = dict(server=self.rest, model_config=str(self.models_config), routing_file=str(self.routing),
                      steps=(25.0, 50.0, 100.0), step_minutes=2.0, poll_seconds=0.5, apply_seconds=30.0)
        values.update(overrides)
        return Settings.from_config(self.config, **values)

    def label_versions(self, stable: int, canary: int) -> None:
        self.models_config.write_text(_models_config(pathlib.Path(self.config.serving_dir), stable, canary))
        deadline = time.monotonic() + 60
        while (self.label("stable"), self.label("canary")) != (stable, canary):
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    config = PipelineConfig(output_root=str(root), release_min_requests=100, monitor_min_outcomes=60)
    serving_dir = pathlib.Path(config.serving_dir)
    recorder = Recorder(open_writable_store(pathlib.Path(config.metadata_path)))
    for version, options in ((STABLE, {}), (HEALTHY, {}), (FAILING, {"fail_above": 0.8}),
                             (SHIFTED, {"offset": 2.0}), (NO_SKILL, {"feature": "z"}), (HEALTHY_TOO, {"offset": 0.05})):
        _save_toy(serving_dir / str(version), **options)
        pushed = standard_artifacts.PushedModel()
        pushed.uri = str(serving_dir / str(version))
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_string_custom_property("pushed_destination", pushed.uri)
        pushed.set_string_custom_property("pushed_version", str(version))
        recorder.execution(f"run-{version}", artifacts.PUSHER, outputs={"pushed_model": [pushed]})
    models_config = root / "models.config"
    models_config.write_text(_models_config(serving_dir, STABLE, HEALTHY))
    routing = root / "routing.json"
    routing.write_text('{"models": {}}\n')  # nothing routed until the release writes its weights
    (root / "monitoring.config").write_text('prometheus_config { enable: true }\n')
    log = root / "server.log"
    ports = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "serving.server", f"--model_config_file={models_config}",
             f"--model_config_file_poll_wait_seconds={POLL}", f"--routing_config_file={routing}",
             f"--routing_config_poll_wait_seconds={POLL}", f"--monitoring_config_file={root / 'monitoring.config'}",
             f"--request_log_file={config.request_log_path}", f"--port={ports[0]}", f"--rest_api_port={ports[1]}"],
            cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
    deployed = Deployment(config, models_config, routing, f"http://127.0.0.1:{ports[1]}", log)
    try:
        deadline = time.monotonic() + 240
        while deployed_label(deployed) != STABLE:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield deployed
    finally:
        stop_process(server)


def deployed_label(deployed: Deployment) -> int | None:
    try:
        return deployed.label("stable")
    except requests.ConnectionError:
        return None


class Traffic:
    """Threads sending one-row requests with no version or label (so the server routes them), and the
    outcome of each row written to the outcome feed every few hundred rows."""

    def __init__(self, deployed: Deployment, threads: int = 2):
        self.deployed, self.stop = deployed, threading.Event()
        self.sent = self.failed = 0
        self.lock = threading.Lock()
        self.outcomes: list[str] = []
        self.folder = pathlib.Path(deployed.config.outcomes_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.threads = [threading.Thread(target=self._send, args=(seed,), daemon=True) for seed in range(threads)]

    def _send(self, seed: int) -> None:
        client = RestClient(self.deployed.rest, NAME, FEATURES, timeout=10)
        random = np.random.default_rng(seed + int(time.time()))
        while not self.stop.is_set():
            x, z = random.random(), random.random()
            row_id = uuid.uuid4().hex
            try:
                client.predict([{"x": f"{x:.5f}", "z": f"{z:.5f}"}], request_ids=row_id)
                failed = 0
            except Exception:  # the caller sees the failure; the release sees it in the server's counters
                failed = 1
            label = int(x + random.normal(0, 0.1) > 0.5)
            with self.lock:
                self.sent += 1
                self.failed += failed
                if not failed:
                    self.outcomes.append(f"{row_id},{time.time():.3f},{label}\n")
                if len(self.outcomes) >= 50:
                    self._flush()

    def _flush(self) -> None:
        if not self.outcomes:
            return
        name = f"outcomes-{uuid.uuid4().hex}.csv"
        staging = self.folder / f".{name}.part"
        staging.write_text("request_id,observed_at,big_tip\n" + "".join(self.outcomes))
        os.replace(staging, self.folder / name)
        self.outcomes = []

    def __enter__(self) -> "Traffic":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        with self.lock:
            self._flush()


def _versions_served(deployed: Deployment, count: int = 40) -> set[int]:
    """The versions that answer requests with no version or label, from the x-model-version header."""
    client = RestClient(deployed.rest, NAME, FEATURES)
    seen = set()
    for _ in range(count):
        reply = requests.post(f"{deployed.rest}/v1/models/{NAME}:predict", timeout=10,
                              json={"instances": [{"b64": _example_b64(client)}]})
        assert reply.ok, reply.text
        seen.add(int(reply.headers["x-model-version"]))
    return seen


def _example_b64(client: RestClient) -> str:
    import base64

    from serving.clients.request_encoding import serialized_examples
    return base64.b64encode(serialized_examples([{"x": "0.7", "z": "0.1"}], FEATURES)[0]).decode()


def _aborted_on(deployed: Deployment, canary: int, metric: str, **overrides) -> release_record.ReleaseStep:
    lines: list[str] = []
    with Traffic(deployed):
        result = run_release(deployed.config, deployed.release(canary, **overrides), say=lines.append)
    assert result.verdict == release_record.ABORT, "\n".join(lines)
    first = result.steps[0]
    assert len(result.steps) == 1 and first.weight == 25.0, "\n".join(lines)  # the first step with evidence
    assert first.reason.startswith(metric), first.reason
    assert read_routing(str(deployed.routing))["models"][NAME]["weights"] == {"stable": 100.0, "canary": 0.0}
    assert _versions_served(deployed) == {STABLE}
    assert deployed.label("stable") == STABLE
    return first


def test_a_canary_with_more_errors_is_aborted_at_the_first_step(deployment):
    step = _aborted_on(deployment, FAILING, "error rate")
    # The reason names the metric, both values and the threshold.
    assert "<= +0.01" in step.reason and "p = " in step.reason
    error = next(check for check in step.evidence if check["metric"] == "error rate")
    assert error["canary"] > 0.1 and error["stable"] == 0.0


def test_a_canary_with_shifted_scores_is_aborted(deployment):
    step = _aborted_on(deployment, SHIFTED, "score distribution")
    assert "population stability index" in step.reason


def test_a_canary_with_lower_live_auc_is_aborted(deployment):
    # Without the shadow, only the outcomes can tell this canary apart: same score distribution, no skill.
    step = _aborted_on(deployment, NO_SKILL, "live AUC", shadow=False)
    auc = next(check for check in step.evidence if check["metric"] == "live AUC")
    assert auc["stable"] > 0.85 and auc["canary"] < 0.65


def test_a_healthy_canary_is_promoted_step_by_step_without_a_failed_request(deployment):
    lines: list[str] = []
    with Traffic(deployment) as traffic:
        result = run_release(deployment.config, deployment.release(HEALTHY), say=lines.append)
    assert result.verdict == release_record.PROMOTE, "\n".join(lines)
    assert [(s.weight, s.verdict) for s in result.steps] == [(25.0, "advance"), (50.0, "advance"), (100.0, "promote")]
    assert traffic.failed == 0 and traffic.sent > 600
    assert deployment.label("stable") == HEALTHY
    assert _versions_served(deployment) == {HEALTHY}
    # Every step and its evidence is in ML Metadata, and `runs` and `lineage` show them.
    store = metadata.open_store(deployment.config.metadata_path)
    recorded = release_record.steps(store, NAME, HEALTHY)
    assert [s.verdict for s in recorded] == ["advance", "advance", "promote"]
    assert {c["metric"] for c in recorded[0].evidence} == {"error rate", "p99 latency", "score distribution",
                                                          "agreement", "live AUC"}
    agreement = next(c for c in recorded[0].evidence if c["metric"] == "agreement")
    assert agreement["verdict"] == "pass" and agreement["value"] == 1.0
    listed = runs.format_runs(runs.list_runs(store, NAME))
    assert "release: canary 2 at 100% vs stable 1: promote" in listed
    assert "release: canary 2 at 25% vs stable 1: advance" in lineage.format_lineage(lineage.trace(store, "2"))
    # A finished release is not walked again.
    with pytest.raises(Exception, match="already ended"):
        run_release(deployment.config, deployment.release(HEALTHY))


@pytest.mark.timeout(900)  # Airflow's start-up and migration take minutes on a busy 2-core machine
def test_the_release_dag_promotes_under_the_real_airflow(deployment, tmp_path):
    """`airflow dags test <pipeline>-release`: the same walk, settings from the pipeline's TOML."""
    from pipeline.config import to_toml
    from pipeline.runners.airflow_runner import airflow_environment, dag_run_state

    deployment.label_versions(STABLE, HEALTHY_TOO)
    config = dataclasses.replace(deployment.config, release_server=deployment.rest,
                                 release_model_config=str(deployment.models_config),
                                 release_routing_file=str(deployment.routing), release_steps="50,100",
                                 release_step_minutes=2.0)
    config_path = tmp_path / "pipeline.toml"
    config_path.write_text(to_toml(config))
    env = airflow_environment(str(config_path), str(tmp_path / "airflow"))
    airflow = str(pathlib.Path(sys.executable).parent / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    log = tmp_path / "dags-test.log"
    with Traffic(deployment) as traffic, open(log, "w") as out:
        subprocess.run([airflow, "dags", "test", f"{NAME}-release", "2026-11-01T00:00:00+00:00"], env=env,
                       stdout=out, stderr=subprocess.STDOUT, timeout=480)
    output = log.read_text()
    assert dag_run_state(output) == "success", output[-4000:]
    assert "promoted: version 6 is stable now (was 1)" in output
    assert traffic.failed == 0
    assert deployment.label("stable") == HEALTHY_TOO
    store = metadata.open_store(deployment.config.metadata_path)
    assert [s.verdict for s in release_record.steps(store, NAME, HEALTHY_TOO)] == ["advance", "promote"]
