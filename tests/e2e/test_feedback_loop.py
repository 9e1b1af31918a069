"""The loop after the push, end to end: serve, replay traffic with ids, late outcomes, monitor,
capture, trigger, retrain, push, and live quality recovered.

One home for the module; the steps run in file order like a week in production:
1. a model trained on the old tipping behaviour is pushed and served (real server, REST);
2. old-behaviour traffic and its outcomes: no decay, nothing triggered;
3. card riders change how they tip (data.synthetic.TipChange); their trips are replayed, the
   first outcomes arrive (too few to judge), then the rest with a flood of duplicate and
   unknown ids; `monitor --trigger` names the decayed slices, captures the span and starts
   a run that trains on it, is blessed against the old model and pushed;
4. the server picks up the new version; new traffic shows live quality recovered.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import pathlib
import re
import shutil
import time

import pytest

from data import synthetic
from pipeline.cli import main as cli
from pipeline.config import load_config
from pipeline.monitoring.replay import replay_rows, write_outcome_files
from pipeline.runners.local_runner import run_local

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MODEL = "taxi-tips"
REPO = pathlib.Path(__file__).resolve().parents[2]
CHANGE = synthetic.TipChange("Credit Card", frozenset(range(24)))
SETTINGS = ["train_steps=400", "eval_steps=20", "spans=latest", "min_slice_examples=50",
            "monitor_min_outcomes=400", "live_min_slice_auc=0.5", "live_max_auc_drop=0.1",
            "trigger_cooldown_hours=0", "trigger_on_serving_drift=false", "on_drift=warn"]


def _rows(count: int, seed: int, change: synthetic.TipChange | None = None) -> list[dict[str, str]]:
    frame = synthetic.generate(count, seed, tip_change=change)
    return frame.to_dict("records")


def _write_span(root: pathlib.Path, number: int, rows: list[dict[str, str]]) -> None:
    folder = root / f"span-{number}"
    folder.mkdir(parents=True)
    with open(folder / "data.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    _write_span(root / "data", 1, _rows(6000, seed=1))
    return root


def _settings(home: pathlib.Path) -> list[str]:
    return [f"data_root={home / 'data'}", f"output_root={home / 'out'}", *SETTINGS]


def _monitor(home: pathlib.Path, start: float, end: float, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    args = ["monitor", "--hours", str((end - start) / 3600), "--end", str(end), *extra]
    for item in _settings(home):
        args += ["--set", item]
    with contextlib.redirect_stdout(out):
        code = cli.main(args)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def server(home):
    from serving.server.model_server import ModelServer
    from serving.server.model_store import ModelStore
    from serving.server.request_log import RequestLog

    config = load_config(None, _settings(home))
    first = run_local(config, out=io.StringIO())
    assert first.succeeded and first.pushed_version, first.error
    request_log = RequestLog(config.request_log_path)
    store = ModelStore(MODEL, config.serving_dir, poll_seconds=0.5)
    served = ModelServer({MODEL: store}, request_log=request_log).start()
    yield served
    served.stop()
    request_log.close()


def _client(server):
    from serving.clients import RestClient
    from serving.clients.request_encoding import feature_types_from_schema

    # What the clients send: every SERVING feature of the schema, the timestamp too.
    types = feature_types_from_schema(str(REPO / "schema" / "schema.pbtxt"))
    return RestClient(f"http://127.0.0.1:{server.rest_port}", MODEL, types, timeout=60)


def _replay(server, rows) -> tuple[list[str], float, float]:
    time.sleep(1.1)  # the log's time stamps are whole seconds: windows must not share one
    start = float(math.floor(time.time()))
    client = _client(server)
    ids = replay_rows(client, rows)
    client.close()
    time.sleep(1.1)
    return ids, start, time.time()


def _report(text: str) -> dict:
    path = next(line for line in text.splitlines() if line.startswith("report: "))[8:].replace(".html", ".json")
    return json.loads(pathlib.Path(path).read_text())


def test_old_behaviour_traffic_shows_no_decay_and_triggers_nothing(home, server):
    rows = _rows(3000, seed=2)
    ids, start, end = _replay(server, rows)
    write_outcome_files(home / "out" / "outcomes", rows, ids)
    code, text = _monitor(home, start, end, "--set", "capture_spans=false")
    assert code == 0, text
    report = _report(text)
    assert report["decision"]["verdict"] == "no trigger", text
    version = report["versions"][0]
    assert version["labelled"] == 3000 and version["coverage"] == 1.0, text
    assert version["auc"] > 0.8 and abs(version["auc"] - version["offline_auc"]) < 0.1, text
    # Trips like the training data's: no feature drifts, and the series say the same as the report.
    drift = report["serving_drift"]
    assert drift["reference_version"] == version["version"] and drift["rows"] == 3000, drift
    assert re.search(r"^serving drift: 0 of \d+ features over threshold \(largest: \w+ [\d.]+ <= [\d.]+\)",
                     text, re.M), text
    series = _series(home / "out" / "monitoring" / "live_quality.prom")
    for item in drift["features"]:
        assert series[("taxi_serving_feature_drift_threshold", item["feature"])] == item["threshold"]
        if item["value"] is not None:
            assert series[("taxi_serving_feature_drift", item["feature"])] == pytest.approx(item["value"])
    # The first run's push, written when it ended and again by the pass.
    status = _series(home / "out" / "monitoring" / "pipeline.prom")
    assert status[("taxi_data_gate_stopped", "")] == 0 and status[("taxi_pipeline_runs_total", "pushed")] == 1
    assert status[("taxi_pipeline_last_run_timestamp_seconds", "pushed")] < end
    assert status[("taxi_pipeline_last_push_timestamp_seconds", "")] < end


def _series(path: pathlib.Path) -> dict[tuple[str, str], float]:
    """{(metric, its feature or outcome label): value} of a Prometheus textfile."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(sample.name, sample.labels.get("feature", sample.labels.get("outcome", ""))): sample.value
            for family in text_string_to_metric_families(path.read_text()) for sample in family.samples}


def test_changed_tipping_is_caught_on_the_card_slice_captured_and_retrained(home, server):
    rows = _rows(8000, seed=3, change=CHANGE)
    ids, start, end = _replay(server, rows)
    held = home / "held"
    first, second = write_outcome_files(held, rows, ids, parts=2, share=0.95, observed_at=end)
    feed = home / "out" / "outcomes"

    # The first outcomes are a trickle: too few to judge a version by.
    partial = held / "first.csv"
    lines = first.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[:301]))
    shutil.move(partial, feed / "late-1.csv")
    code, text = _monitor(home, start, end, "--set", "capture_spans=false")
    assert code == 0 and "fewer than monitor_min_outcomes=400" in text, text
    assert _report(text)["decision"]["verdict"] == "no trigger"

    # Then all of them, the trickle again and a flood of ids no request carried.
    shutil.move(first, feed / "late-2.csv")
    shutil.move(second, feed / "late-3.csv")
    with open(feed / "late-4.csv", "w") as handle:
        handle.write("request_id,observed_at,tips,fare\n")
        handle.writelines(f"nobody-{i},{end:.0f},1.0,5.0\n" for i in range(5000))
    code, text = _monitor(home, start, end, "--trigger")
    report = _report(text)
    assert report["decision"]["verdict"] == "trigger", text
    assert any("payment_type=Credit Card" in reason for reason in report["decision"]["reasons"]), text
    assert report["outcomes"]["duplicates"] == 300 and report["outcomes"]["unmatched"] >= 5000, text
    captured = pathlib.Path(report["captured_span"]["span"])
    assert captured.name == "span-2" and report["captured_span"]["rows"] == round(8000 * 0.95), text
    old, new = _versions(home)
    assert code == 0 and "triggered run " in text and f": pushed {new}" in text, text
    runs = _cli(home, "runs")
    # The first reason is the card slice's AUC, or the overall drop when that is larger (both hold here).
    assert re.search(r"monitor: trigger \((slice AUC|AUC drop) ", runs) and f"pushed {new}" in runs, runs
    # The triggered run wrote its push when it ended.
    status = _series(home / "out" / "monitoring" / "pipeline.prom")
    assert status[("taxi_pipeline_runs_total", "pushed")] == 2 and status[("taxi_data_gate_stopped", "")] == 0
    assert status[("taxi_pipeline_last_push_timestamp_seconds", "")] > end


def test_new_version_serves_and_live_quality_recovers(home, server):
    old, new = _versions(home)
    deadline = time.time() + 60
    while not _available(server, new) and time.time() < deadline:
        time.sleep(0.5)
    rows = _rows(4000, seed=4, change=CHANGE)
    ids, start, end = _replay(server, rows)
    write_outcome_files(home / "out" / "outcomes", rows, ids, observed_at=end)
    code, text = _monitor(home, start, end, "--set", "capture_spans=false")
    report = _report(text)
    version = report["versions"][0]
    assert version["version"] == new and version["labelled"] == 4000, text
    assert report["decision"]["verdict"] == "no trigger", text
    assert version["worst_slice_auc"] >= 0.5 and version["auc"] > 0.8, text
    assert "live quality" in _cli(home, "lineage", str(new))


def _versions(home: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (home / "out" / "serving" / MODEL).iterdir() if p.name.isdigit())


def _available(server, version: int) -> bool:
    return any(s.version == version and s.state == "AVAILABLE" for s in server.models[MODEL].statuses_or_empty())


def _cli(home: pathlib.Path, *args: str) -> str:
    out = io.StringIO()
    argv = list(args)
    for item in _settings(home):
        argv += ["--set", item]
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    assert code == 0, out.getvalue()
    return out.getvalue()
