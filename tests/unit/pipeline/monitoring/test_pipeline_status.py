"""pipeline.prom: run outcomes with their end times, the data gate and the newest push, read from ML Metadata."""
from __future__ import annotations

import json
import os
import pathlib
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import artifacts
from pipeline.config import PipelineConfig
from pipeline.monitoring import pipeline_status
from tests.unit.pipeline.conftest import PIPELINE_NAME

pytestmark = [pytest.mark.timeout(120)]


def _pushed_model(recorder, pushed: int, **custom):
    from tfx.types import standard_artifacts

    model = standard_artifacts.PushedModel()
    model.uri = f"pipeline/Pusher/pushed_model/{time.monotonic_ns()}"
    model.set_int_custom_property("pushed", pushed)
    for name, value in custom.items():
        model.set_string_custom_property(name, value)
    return model


def _run(recorder, run_id: str, outcome: str, airflow: bool = False) -> None:
    """The executions a run of each outcome leaves in ML Metadata."""
    def execution(node_id, state="COMPLETE", **outputs):
        recorder.execution(run_id, node_id, state, outputs=outputs, airflow=airflow)

    execution(artifacts.CSV_CHECK)
    if not airflow:
        recorder.link(run_id)
    if outcome == "gate_stopped":
        # LocalDagRunner records the failure; TFX's Airflow launcher leaves the execution RUNNING.
        execution(artifacts.DATA_GATE, "RUNNING" if airflow else "FAILED")
        return
    execution(artifacts.DATA_GATE)
    if outcome == "failed":
        execution(artifacts.TRAINER, "FAILED")
        return
    pushed = outcome in ("pushed", "cached")
    execution(artifacts.PUSHER, "CACHED" if outcome == "cached" else "COMPLETE",
              pushed_model=[_pushed_model(recorder, int(pushed), **({"pushed_version": "1"} if pushed else {}))])
    time.sleep(0.01)  # ML Metadata's times are milliseconds: each run ends after the one before


def _ends(recorder) -> dict[str, float]:
    """{run id: the last update of its executions}, straight from the store."""
    ends = {}
    for kind in ("pipeline_run", "run"):
        for context in recorder.store.get_contexts_by_type(kind):
            executions = recorder.store.get_executions_by_context(context.id)
            ends[context.name.removeprefix(f"{PIPELINE_NAME}.")] = max(
                e.last_update_time_since_epoch for e in executions) / 1000
    return ends


def _series(config: PipelineConfig) -> dict[tuple[str, str], float]:
    """{(metric, outcome label or ""): value} of the written pipeline.prom."""
    with open(os.path.join(config.monitoring_dir, pipeline_status.PROMETHEUS_FILE)) as handle:
        text = handle.read()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.labels["pipeline"] == PIPELINE_NAME
            found[(sample.name, sample.labels.get("outcome", ""))] = sample.value
    return found


@pytest.fixture
def config(tmp_path) -> PipelineConfig:
    return PipelineConfig(output_root=str(tmp_path))  # metadata.db there: the recorder's store


def test_each_outcome_carries_the_end_of_its_newest_run_and_a_gate_stop_is_flagged(recorder, config):
    for run_id, outcome in (("r1", "pushed"), ("r2", "not_blessed"), ("r3", "failed"), ("r4", "pushed"),
                            ("r5", "gate_stopped")):
        _run(recorder, run_id, outcome)
    pipeline_status.write_status(config, run_ended=True)
    series, ends = _series(config), _ends(recorder)
    last = "taxi_pipeline_last_run_timestamp_seconds"
    assert series[(last, "pushed")] == pytest.approx(ends["r4"])  # the newest push, not the first
    assert series[(last, "not_blessed")] == pytest.approx(ends["r2"])
    assert series[(last, "failed")] == pytest.approx(ends["r3"])
    assert series[(last, "gate_stopped")] == pytest.approx(ends["r5"])
    assert series[("taxi_data_gate_stopped", "")] == 1
    assert {outcome: series[("taxi_pipeline_runs_total", outcome)] for outcome in pipeline_status.OUTCOMES} == {
        "pushed": 2, "not_blessed": 1, "gate_stopped": 1, "failed": 1}
    pushes = [a.create_time_since_epoch / 1000 for a in recorder.store.get_artifacts_by_type("PushedModel")]
    assert series[("taxi_pipeline_last_push_timestamp_seconds", "")] == pytest.approx(sorted(pushes)[-2])


def test_a_later_push_clears_the_gate_flag_and_older_outcomes_come_back_from_ml_metadata(recorder, config):
    _run(recorder, "r1", "not_blessed")
    _run(recorder, "r2", "gate_stopped")
    pipeline_status.write_status(config, run_ended=True)
    assert _series(config)[("taxi_data_gate_stopped", "")] == 1
    # The file is lost (a new node, a restored store): the next writer rebuilds every outcome.
    os.remove(os.path.join(config.monitoring_dir, pipeline_status.PROMETHEUS_FILE))
    _run(recorder, "r3", "pushed")
    pipeline_status.write_status(config, run_ended=True)
    series, ends = _series(config), _ends(recorder)
    assert series[("taxi_data_gate_stopped", "")] == 0
    assert series[("taxi_pipeline_last_run_timestamp_seconds", "not_blessed")] == pytest.approx(ends["r1"])
    assert series[("taxi_pipeline_last_run_timestamp_seconds", "gate_stopped")] == pytest.approx(ends["r2"])
    # An outcome no run had has no series: "never" is not a time.
    assert ("taxi_pipeline_last_run_timestamp_seconds", "failed") not in series


def test_a_cached_push_counts_as_pushed_and_a_rollback_is_not_a_new_push(recorder, config):
    _run(recorder, "r1", "pushed")
    [model] = recorder.store.get_artifacts_by_type("PushedModel")
    # Same data, same model: the cached Pusher republishes r1's PushedModel, which serves already.
    reused = _pushed_model(recorder, 1, pushed_version="1")
    reused.id, reused.type_id = model.id, model.type_id
    recorder.execution("r2", artifacts.PUSHER, "CACHED", outputs={"pushed_model": [reused]})
    recorder.link("r2")
    time.sleep(0.01)
    # `taxi-pipeline rollback` records a copy of an old PushedModel (outside any run).
    recorder.register(_pushed_model(recorder, 1, pushed_version="2", rolled_back_to="1"))
    pipeline_status.write_status(config, run_ended=True)
    series, ends = _series(config), _ends(recorder)
    assert series[("taxi_pipeline_runs_total", "pushed")] == 2
    assert series[("taxi_pipeline_last_run_timestamp_seconds", "pushed")] == pytest.approx(ends["r2"])
    assert series[("taxi_pipeline_last_push_timestamp_seconds", "")] == pytest.approx(model.create_time_since_epoch
                                                                                      / 1000)


def test_an_airflow_run_stopped_at_the_gate_is_flagged_but_not_while_a_run_is_in_progress(recorder, config):
    _run(recorder, "scheduled__1", "pushed", airflow=True)
    _run(recorder, "scheduled__2", "gate_stopped", airflow=True)  # DataGate left RUNNING, nothing after it
    # A monitor pass while a live process holds the output folder's run lock: the newest run may be running.
    with open(os.path.join(config.output_root, "run.lock"), "w") as handle:
        json.dump({"pid": os.getppid(), "host": socket.gethostname()}, handle)
    pipeline_status.write_status(config)
    series = _series(config)
    assert series[("taxi_data_gate_stopped", "")] == 0
    assert ("taxi_pipeline_last_run_timestamp_seconds", "gate_stopped") not in series
    # The DAG run's end callback knows the run has ended.
    pipeline_status.write_status(config, run_ended=True)
    assert _series(config)[("taxi_data_gate_stopped", "")] == 1
    # So does a pass after the lock holder is gone (the lock file empty, as a run that ended leaves it).
    open(os.path.join(config.output_root, "run.lock"), "w").close()
    pipeline_status.write_status(config)
    assert _series(config)[("taxi_data_gate_stopped", "")] == 1


def test_a_failure_to_write_is_a_warning_naming_the_file_never_an_error(recorder, config, caplog):
    _run(recorder, "r1", "pushed")
    os.makedirs(config.output_root, exist_ok=True)
    with open(config.monitoring_dir, "w") as handle:  # a file where the folder should be
        handle.write("not a folder")
    with caplog.at_level("WARNING"):
        warning = pipeline_status.write_status_safely(config, run_ended=True)
    assert warning is not None and pipeline_status.PROMETHEUS_FILE in warning and "writes it again" in warning
    assert warning in caplog.text


def test_a_rerun_that_found_nothing_changed_ends_the_newest_run_again(recorder, config):
    """runners/up_to_date.py: such a rerun makes no run in ML Metadata, but is one for the alerts."""
    from pipeline.runners import up_to_date

    _run(recorder, "r1", "pushed")
    _run(recorder, "r2", "not_blessed")
    last = "taxi_pipeline_last_run_timestamp_seconds"
    state = pathlib.Path(config.output_root, up_to_date.STATE_FILE)
    state.write_text(json.dumps({"run_id": "r1", "finished": "", "fingerprint": "", "confirmed": time.time()}))
    pipeline_status.write_status(config, run_ended=True)
    assert _series(config)[(last, "pushed")] == pytest.approx(_ends(recorder)["r1"])  # r1 is not the newest
    state.write_text(json.dumps({"run_id": "r2", "finished": "", "fingerprint": "", "confirmed": time.time()}))
    pipeline_status.write_status(config, run_ended=True)
    series = _series(config)
    assert series[(last, "not_blessed")] == pytest.approx(json.loads(state.read_text())["confirmed"])
    assert series[(last, "not_blessed")] > _ends(recorder)["r2"]
    assert series[("taxi_pipeline_runs_total", "not_blessed")] == 1  # runs in ML Metadata, as before


def test_no_store_yet_writes_nothing(config):
    assert pipeline_status.write_status_safely(config) is None
    assert not os.path.exists(os.path.join(config.monitoring_dir, pipeline_status.PROMETHEUS_FILE))
