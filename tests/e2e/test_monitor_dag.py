"""The monitoring DAG under the real Airflow CLI: a decayed model's traffic triggers a run of
the training DAG (and `runs` says so), a healthy one's does not, and a trigger that cannot
start (the training DAG is not in Airflow's database) is recorded as "not started".

No model is trained: the request log is written as the model server writes it, with
predictions made up from the outcomes, so the live AUC is whatever each case needs.
"""
from __future__ import annotations

import csv
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from pipeline.cli.main import main
from pipeline.config import load_config, to_toml
from pipeline.monitoring.outcomes import Outcome, label
from pipeline.runners import airflow_runner
from pipeline.runners.airflow_runner import airflow_environment, build_monitor_dag, dag_run_state
from tests.conftest import shipped_lines, write_span

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MONITOR, DECIDE, TRIGGER, RECORD = (airflow_runner.MONITOR_TASK, airflow_runner.DECIDE_TASK,
                                    airflow_runner.TRIGGER_TASK, airflow_runner.RECORD_TASK)

# Airflow reads AIRFLOW_HOME when first imported (build_monitor_dag imports it in this process).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-tests-"))

AIRFLOW = str(pathlib.Path(sys.executable).parent / "airflow")
LOGICAL_DATE = "2026-11-01T00:00:00+00:00"
ROWS = 400
# Small enough for ROWS joined predictions to be judged; no span capture or drift check
# (no training statistics without a trained model): the live slice AUC alone decides.
MONITOR_SETTINGS = ["monitor_min_outcomes=50", "min_slice_examples=5", "capture_spans=false",
                    "trigger_on_serving_drift=false"]


def _config(root: pathlib.Path):
    return load_config(None, [f"data_root={root / 'data'}", f"output_root={root / 'out'}", *MONITOR_SETTINGS])


def test_monitor_dag_shape(tmp_path):
    write_span(tmp_path / "data", 1, shipped_lines(4)[:11])
    config = _config(tmp_path)
    dag = build_monitor_dag(config)
    assert dag.dag_id == "taxi-tips-monitor" and dag.schedule_interval == "@hourly"
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.get_task(DECIDE).upstream_task_ids == {MONITOR}
    assert dag.get_task(RECORD).upstream_task_ids == {TRIGGER}
    trigger = dag.get_task(TRIGGER)
    assert trigger.trigger_dag_id == config.pipeline_name and trigger.wait_for_completion is False


def _write_traffic(config, predict) -> None:
    """ROWS requests as the model server logs them, and their outcomes; `predict(label)` is
    the probability each request was answered with."""
    import tf_environment  # noqa: F401  (before TensorFlow)
    from models.features import feature_types
    from serving.clients.request_encoding import row_to_example
    from serving.server.request_log import RequestLog

    rows = [row for row in csv.DictReader(shipped_lines(3)) if row["tips"] and row["fare"]][:ROWS]
    now = time.time()
    labels = [label(Outcome(float(row["tips"]), float(row["fare"]), None, now, "")) for row in rows]
    ids = [f"req-{i:05d}" for i in range(len(rows))]
    types = feature_types()
    log = RequestLog(config.request_log_path)
    for start in range(0, len(rows), 100):  # a few requests of 100 rows, as a batch client sends them
        batch = slice(start, start + 100)
        examples = [row_to_example(row, types).SerializeToString() for row in rows[batch]]
        log.record(config.pipeline_name, 1, "serving_default", {"examples": np.array(examples, dtype=object)},
                   {"tip_probability": np.array([predict(y) for y in labels[batch]], np.float32)},
                   request_ids=ids[batch], version_label=None)
    log.close()
    assert not log.errors
    outcomes = pathlib.Path(config.outcomes_dir)
    outcomes.mkdir(parents=True)
    lines = ["request_id,observed_at,tips,fare"] + [
        f"{request_id},{int(now)},{row['tips']},{row['fare']}" for request_id, row in zip(ids, rows)]
    (outcomes / "outcomes.csv").write_text("\n".join(lines) + "\n")


def _airflow(env: dict, *args: str) -> str:
    process = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True)
    assert process.returncode == 0, f"airflow {' '.join(args)}:\n{process.stdout[-3000:]}{process.stderr[-3000:]}"
    return process.stdout


def _airflow_json(env: dict, *args: str) -> list[dict]:
    """`airflow ... -o json`; Airflow's own log lines ("[2026-...] {...} INFO - ...") may come first."""
    lines = _airflow(env, *args, "-o", "json").splitlines()
    first = next(i for i, line in enumerate(lines) if line in ("[", "[]") or line.startswith("[{"))
    return json.loads("\n".join(lines[first:]))


def _monitor_dag_run(root: pathlib.Path, predict, register_training: bool = True) -> dict:
    """One `airflow dags test` of the monitoring DAG over traffic answered by `predict`."""
    # The training DAG's file lists the spans of data_root when Airflow parses it: one span.
    write_span(root / "data", 1, shipped_lines(4)[:101])
    config = _config(root)
    config_path = root / "pipeline.toml"
    config_path.write_text(to_toml(config))
    _write_traffic(config, predict)
    env = airflow_environment(str(config_path), str(root / "airflow"))
    _airflow(env, "db", "migrate")
    if register_training:
        # TriggerDagRunOperator finds the training DAG in Airflow's database, where the scheduler's
        # DAG processor would have put it; `dags test` writes only the run it tests.
        _airflow(env, "dags", "reserialize")
    dag_id = f"{config.pipeline_name}-monitor"
    test = subprocess.run([AIRFLOW, "dags", "test", dag_id, LOGICAL_DATE], env=env, capture_output=True, text=True)
    output = test.stdout + test.stderr
    (root / "dags-test.log").write_text(output)
    states = {item["task_id"]: item["state"]
              for item in _airflow_json(env, "tasks", "states-for-dag-run", dag_id, LOGICAL_DATE)}
    training_runs = (_airflow_json(env, "dags", "list-runs", "-d", config.pipeline_name)
                     if register_training else None)
    return {"config_path": config_path, "output": output, "state": dag_run_state(output), "states": states,
            "training_runs": training_runs, "returncode": test.returncode}


def _runs_output(config_path: pathlib.Path, capsys) -> str:
    capsys.readouterr()
    assert main(["runs", "--config", str(config_path)]) == 0
    return capsys.readouterr().out


def test_decayed_model_triggers_the_training_dag(tmp_path, capsys):
    # Confidently wrong: a high probability exactly when the tip was not big, so live AUC is 0.
    run = _monitor_dag_run(tmp_path, lambda big_tip: 0.1 if big_tip else 0.9)
    tail = run["output"][-3000:]
    assert run["returncode"] == 0 and run["state"] == "success", tail
    assert "decision: TRIGGER" in run["output"] and "slice AUC = 0.0000" in run["output"], tail
    assert run["states"] == {MONITOR: "success", DECIDE: "success", TRIGGER: "success",
                             RECORD: "success"}
    assert len(run["training_runs"]) == 1, run["training_runs"]
    triggered = run["training_runs"][0]["run_id"]
    assert triggered.startswith("manual__")

    runs = _runs_output(run["config_path"], capsys)
    line = next((line for line in runs.splitlines() if "monitor: trigger" in line), None)
    assert line is not None, runs
    # The first reason (reasons sort by AUC, all 0 here), and how many more.
    assert "(slice AUC = 0.0000 < live_min_slice_auc 0.55 on " in line and " more)" in line, line
    assert f"triggered DAG run {triggered} of taxi-tips" in line, line


def test_healthy_model_starts_nothing(tmp_path, capsys):
    run = _monitor_dag_run(tmp_path, lambda big_tip: float(big_tip))  # perfect: live AUC 1
    tail = run["output"][-3000:]
    assert run["returncode"] == 0 and run["state"] == "success", tail
    assert "decision: no trigger" in run["output"], tail
    assert run["states"] == {MONITOR: "success", DECIDE: "success", TRIGGER: "skipped",
                             RECORD: "skipped"}
    assert run["training_runs"] == []
    runs = _runs_output(run["config_path"], capsys)
    assert "monitor: no trigger" in runs and "triggered" not in runs, runs


def test_trigger_that_cannot_start_is_recorded(tmp_path, capsys):
    # The training DAG never reached Airflow's database (say its file fails to import).
    run = _monitor_dag_run(tmp_path, lambda big_tip: 0.1 if big_tip else 0.9, register_training=False)
    assert run["returncode"] != 0 and run["state"] == "failed", run["output"][-3000:]
    assert run["states"] == {MONITOR: "success", DECIDE: "success", TRIGGER: "failed", RECORD: "upstream_failed"}
    runs = _runs_output(run["config_path"], capsys)
    assert "monitor: trigger (slice AUC" in runs, runs
    assert "not started: DAG taxi-tips could not be triggered (Dag id taxi-tips not found" in runs, runs
