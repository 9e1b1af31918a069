"""A real Prometheus on loopback, configured from serving/deploy/, scraping the project's model
server and the pipeline's textfiles (through node_exporter), evaluating the project's alert rules.

What a user would read back from Prometheus: every series the rules and the dashboard use is
there with its labels, errors driven through the server fire ModelServerErrorRatioHigh, the
textfile states fire (or keep silent) the alerts they should, and every dashboard query
returns data.

The rules are the project's file with each `for:` set to 0s: those durations (minutes to
hours) keep a blip from paging in production, and the promtool unit tests
(tests/unit/serving/test_alert_rules.py) check them on simulated time; here the question is
whether the expressions meet the real series, which waiting minutes would not change.
"""
from __future__ import annotations

import json
import pathlib
import random
import subprocess
import sys
import threading
import time

import portpicker
import pytest
import requests
import tensorflow as tf
import yaml
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from tests.conftest import REPO
from tests.services.debian_binaries import MissingBinary, debian_binary
from tests.services.loopback_services import LoopbackService, start_node_exporter, start_prometheus
from tests.services.prometheus_api import PrometheusAPI, PrometheusError

pytestmark = pytest.mark.slow
DEPLOY = REPO / "serving" / "deploy"
NAME = "taxi-tips"
PIPELINE = "taxi-tips"
# The routing the traffic goes through: stable v1, canary v2 shadowed on stable's requests, and a
# "challenger" label that names no version, so the router's fallback shows in its series.
ROUTING = {"models": {NAME: {"weights": {"stable": 45, "canary": 45, "challenger": 10}, "shadow": "canary"}}}
MODEL_CONFIG = """model_config_list {{ config {{
  name: "{name}" base_path: "{base}" model_platform: "tensorflow"
  model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
  version_labels {{ key: "stable" value: 1 }}
  version_labels {{ key: "canary" value: 2 }}
}} }}
"""
# Alerts the textfiles below must fire, and alerts that every state here must leave silent.
TEXTFILE_ALERTS = {"DataGateStopped", "CanaryAborted", "LiveAUCBelowFloor", "ServingFeatureDrift"}
SILENT_ALERTS = {"ModelServerDown", "ModelStale", "PipelineRunFailed", "PipelineNotRunning", "MonitorPassStale",
                 "LabelCoverageLow", "CanaryReleaseStalled"}


class _Scorer(tf.Module):
    """A tip probability from the fare alone; versions differ by slope, so their scores differ."""

    def __init__(self, slope: float):
        super().__init__()
        self.slope = slope

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="fare")])
    def serve(self, fare):
        return {"tip_probability": tf.sigmoid(self.slope * (fare - 10.0))}


def _write_textfiles(folder: pathlib.Path, now: float) -> None:
    """The pipeline's three textfiles as its writers leave them (names and labels of the contract):
    the newest run stopped at the data gate, the canary v2's release aborted, its live AUC on card
    trips under the floor, and serving drift on `company`; everything else healthy."""
    def gauges(file: str, specs: dict[str, tuple[tuple[str, ...], list[tuple[tuple[str, ...], float]]]]) -> None:
        registry = CollectorRegistry()
        for name, (labels, samples) in specs.items():
            gauge = Gauge(name, name.replace("_", " "), labels, registry=registry)
            for values, value in samples:
                gauge.labels(*values).set(value)
        write_to_textfile(str(folder / file), registry)

    slice_labels = ("pipeline", "model_version", "version_label", "slice")
    overall, card = (PIPELINE, "1", "stable", "Overall"), (PIPELINE, "2", "canary", "payment_type:Credit Card")
    gauges("live_quality.prom", {
        "taxi_live_auc": (slice_labels, [(overall, 0.74), (card, 0.5)]),
        "taxi_live_slice_gated": (slice_labels, [(overall, 1), (card, 1)]),
        "taxi_live_label_coverage": (("pipeline", "model_version"), [((PIPELINE, "1"), 0.6), ((PIPELINE, "2"), 0.4)]),
        "taxi_live_newest_outcome_age_seconds": (("pipeline",), [((PIPELINE,), 900)]),
        "taxi_monitor_trigger": (("pipeline",), [((PIPELINE,), 0)]),
        "taxi_monitor_last_pass_timestamp_seconds": (("pipeline",), [((PIPELINE,), now - 600)]),
        "taxi_serving_feature_drift": (("pipeline", "feature"), [((PIPELINE, "company"), 0.2),
                                                                 ((PIPELINE, "fare"), 0.01)]),
        "taxi_serving_feature_drift_threshold": (("pipeline", "feature"), [((PIPELINE, "company"), 0.1),
                                                                           ((PIPELINE, "fare"), 0.05)]),
    })
    gauges("pipeline.prom", {
        "taxi_pipeline_last_run_timestamp_seconds": (("pipeline", "outcome"), [
            ((PIPELINE, "pushed"), now - 86400), ((PIPELINE, "not_blessed"), now - 2 * 86400),
            ((PIPELINE, "failed"), now - 5 * 86400), ((PIPELINE, "gate_stopped"), now - 3600)]),
        "taxi_pipeline_last_push_timestamp_seconds": (("pipeline",), [((PIPELINE,), now - 86400)]),
        "taxi_data_gate_stopped": (("pipeline",), [((PIPELINE,), 1)]),
    })
    release = ("pipeline", "canary_version")
    gauges("release.prom", {
        "taxi_release_aborted": (release, [((PIPELINE, "2"), 1)]),
        "taxi_release_step_weight": (release, [((PIPELINE, "2"), 0)]),
        "taxi_release_last_step_timestamp_seconds": (release, [((PIPELINE, "2"), now - 300)]),
    })


def _start_model_server(root: pathlib.Path) -> LoopbackService:
    """`python -m serving.server` as production starts it: model config with labels, the shipped
    monitoring.config (the metrics path) and a routing file."""
    base = root / "models" / NAME
    for version, slope in ((1, 0.2), (2, 0.5)):
        module = _Scorer(slope)
        tf.saved_model.save(module, str(base / str(version)), signatures={"serving_default": module.serve})
    (root / "models.config").write_text(MODEL_CONFIG.format(name=NAME, base=base))
    (root / "routing.json").write_text(json.dumps(ROUTING))
    grpc_port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    log_path = root / "model_server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.server", f"--model_config_file={root / 'models.config'}",
             f"--port={grpc_port}", f"--rest_api_port={rest_port}", "--file_system_poll_wait_seconds=0",
             f"--monitoring_config_file={DEPLOY / 'monitoring.config'}",
             f"--routing_config_file={root / 'routing.json'}"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LoopbackService("model server", process, rest_port, log_path)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            states = [s["state"] for s in requests.get(f"{server.url}/v1/models/{NAME}", timeout=5).json()
                      .get("model_version_status", [])]
            if states.count("AVAILABLE") == 2:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"the model server did not serve versions 1 and 2 within 120 s; its log ends:\n"
                       f"{server.log_tail()}")


def _prometheus_config(root: pathlib.Path, server_port: int, textfile_port: int) -> pathlib.Path:
    """serving/deploy/prometheus.yml with loopback targets, 1 s intervals and the rules with `for: 0s`."""
    rules = yaml.safe_load((DEPLOY / "alert_rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    (root / "alert_rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(root / "alert_rules.yml")]
    targets = {"model-server": server_port, "pipeline-textfiles": textfile_port}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"serving/deploy/prometheus.yml scrapes {sorted(jobs)}, the test knows {targets}"
    for name, port in targets.items():
        jobs[name]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    path = root / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class _Traffic(threading.Thread):
    """Predict calls with random routing keys, every other one with a body the model refuses."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stopped, self.answers = f"{url}/v1/models/{NAME}:predict", threading.Event(), []

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stopped.wait(0.05):
                good = len(self.answers) % 2 == 0
                body = {"instances": [random.uniform(2, 30), random.uniform(2, 30)] if good else ["not a fare"]}
                try:
                    reply = session.post(self.url, json=body, timeout=10,
                                         headers={"x-routing-key": f"rider-{random.randrange(10 ** 6)}"})
                    self.answers.append(reply.status_code)
                except requests.RequestException as error:
                    self.answers.append(repr(error))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The model server under traffic, node_exporter over the textfiles, and Prometheus over both."""
    root = tmp_path_factory.mktemp("prometheus")
    try:
        for binary in ("prometheus", "prometheus-node-exporter"):
            debian_binary(binary)
    except MissingBinary as error:
        pytest.fail(str(error), pytrace=False)
    textfiles = root / "monitoring"
    textfiles.mkdir()
    _write_textfiles(textfiles, time.time())
    started: list[LoopbackService] = []
    traffic = None
    try:
        server = _start_model_server(root)
        started.append(server)
        started.append(node_exporter := start_node_exporter(textfiles))
        started.append(prometheus := start_prometheus(_prometheus_config(root, server.port, node_exporter.port),
                                                      root / "tsdb"))
        traffic = _Traffic(server.url)
        traffic.start()
        yield PrometheusAPI(prometheus.url), traffic
    finally:
        if traffic is not None:
            traffic.stopped.set()
            traffic.join(timeout=15)
        for service in reversed(started):
            service.stop()


@pytest.mark.timeout(300)
def test_prometheus_holds_the_servers_and_the_pipelines_series(stack):
    api, traffic = stack
    targets = api.wait_for(api.targets, lambda found: len(found) == 2 and all(t["health"] == "up" for t in found),
                           "both scrape targets up")
    assert {t["labels"]["job"] for t in targets} == {"model-server", "pipeline-textfiles"}

    def labels(expr: str, label: str) -> set[str]:
        return {sample["metric"].get(label, "") for sample in api.query(expr)}

    api.wait_for(lambda: labels("model_server_routed_requests_total", "arm"),
                 lambda arms: {"stable", "canary"} <= arms, "routed requests on both arms")
    api.wait_for(lambda: labels("model_server_prediction_score_bucket", "version"),
                 lambda versions: versions == {"1", "2"}, "score histograms of versions 1 and 2")
    api.wait_for(lambda: labels('model_server_shadow_requests_total{status="ok"}', "version"),
                 lambda versions: versions == {"2"}, "shadow calls answered by version 2")
    api.wait_for(lambda: labels("model_server_routing_fallbacks_total", "label"),
                 lambda fallen: fallen == {"challenger"}, "fallbacks from the label that names no version")
    weights = {s["metric"]["arm"]: float(s["value"][1]) for s in api.query("model_server_routing_weight")}
    assert weights == pytest.approx({"stable": 0.45, "canary": 0.45, "challenger": 0.1})
    # The textfiles' series keep their own labels (node_exporter adds only job and instance).
    assert labels("taxi_live_auc", "slice") == {"Overall", "payment_type:Credit Card"}
    assert labels("taxi_pipeline_last_run_timestamp_seconds", "outcome") == {
        "pushed", "not_blessed", "failed", "gate_stopped"}
    assert labels("taxi_release_aborted", "canary_version") == {"2"}
    assert 200 in traffic.answers and 400 in traffic.answers, traffic.answers[:10]


@pytest.mark.timeout(300)
def test_errors_sent_to_the_server_fire_the_error_ratio_alert(stack):
    api, _ = stack
    firing = api.wait_for(lambda: api.firing("ModelServerErrorRatioHigh"), bool,
                          "ModelServerErrorRatioHigh firing", seconds=90)
    alert = firing[0]
    print("firing alert read back from Prometheus:", json.dumps(alert, indent=1))
    assert alert["labels"]["model"] == NAME and alert["labels"]["severity"] == "page"
    assert float(alert["value"]) > 0.05  # every other request fails: about half
    assert "failed over 5m" in alert["annotations"]["summary"] and alert["annotations"]["runbook"]


@pytest.mark.timeout(300)
def test_textfile_states_fire_their_alerts_and_healthy_ones_stay_silent(stack):
    api, _ = stack

    def firing_names() -> set[str]:
        return {a["labels"]["alertname"] for a in api.alerts() if a["state"] == "firing"}

    names = api.wait_for(firing_names, lambda names: TEXTFILE_ALERTS <= names, f"{sorted(TEXTFILE_ALERTS)} firing")
    assert not names & SILENT_ALERTS, f"alerts firing on healthy series: {sorted(names & SILENT_ALERTS)}"
    drift = api.firing("ServingFeatureDrift")
    assert [a["labels"]["feature"] for a in drift] == ["company"]
    auc = api.firing("LiveAUCBelowFloor")
    assert [(a["labels"]["model_version"], a["labels"]["slice"]) for a in auc] == [("2", "payment_type:Credit Card")]
    broken = [(r["name"], r.get("lastError")) for r in api.rules() if r["health"] != "ok"]
    assert not broken, f"rules Prometheus could not evaluate: {broken}"


@pytest.mark.timeout(300)
def test_every_dashboard_query_returns_data(stack):
    """Each panel's query parses and finds series in what Prometheus holds, as Grafana would ask."""
    api, _ = stack
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queries = {f"panel {panel['id']} {panel['title']!r} {target['refId']}": target["expr"]
               for panel in dashboard["panels"] for target in panel.get("targets", [])}
    assert len(queries) >= 25

    def empty() -> dict[str, str]:
        missing = {}
        for where, expr in queries.items():
            try:
                if not api.query(expr):
                    missing[where] = expr
            except PrometheusError as error:  # a query Grafana would show as an error: no point waiting
                raise AssertionError(f"serving/deploy/grafana-dashboard.json {where}: {error}") from None
        return missing

    api.wait_for(empty, lambda missing: not missing, "data for every dashboard query", seconds=90)
