"""Provenance of Airflow runs: the training DAG's callbacks (CsvCheck's and Trainer's tasks succeeded, the DAG
run ended) record on the run context TFX's Airflow launcher made ("<pipeline>.<DAG run id>", type `run`), and
`compare` reads it beside a local run's."""
from __future__ import annotations

import json
import logging
import pathlib
import types

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata
from pipeline.config import load_config
from pipeline.governance import compare, provenance, reproduce, runs
from pipeline.prepare import prepare
from pipeline.runners import airflow_runner
from tests.conftest import shipped_lines, write_span

pytestmark = pytest.mark.timeout(120)

DAG_RUN = "manual__2026-11-01T00:00:00+00:00"
RUN = f"taxi-tips.{DAG_RUN}"


@pytest.fixture
def config(tmp_path, metadata_path):
    for span in (1, 2):
        write_span(tmp_path / "data", span, shipped_lines(span)[:20])
    return load_config(None, [f"data_root={tmp_path / 'data'}", f"output_root={tmp_path / 'out'}",
                              f"metadata_store={metadata_path}", 'hyperparameters={"batch_size": 32}'])


def _csv_check(recorder, dag_run: str, fingerprint: str) -> None:
    """CsvCheck of a DAG run as TFX's Airflow launcher records it (its parameters as properties)."""
    store, run = recorder.store, f"{recorder.pipeline_name}.{dag_run}"
    kind = metadata_store_pb2.ExecutionType(name="pipeline.ingest.csv_check.CsvCheck")
    kind.properties[provenance.DATA_FINGERPRINT] = metadata_store_pb2.STRING
    execution = metadata_store_pb2.Execution(type_id=store.put_execution_type(kind),
                                             last_known_state=metadata_store_pb2.Execution.COMPLETE)
    execution.properties[provenance.DATA_FINGERPRINT].string_value = fingerprint
    store.put_execution(execution, [], [recorder._context("pipeline", recorder.pipeline_name),
                                        recorder._context("run", run),
                                        recorder._context("component_run", f"{run}.CsvCheck")])


def _trainer(recorder, config, dag_run: str, learning_rate: float = 0.005) -> None:
    from tfx.types import standard_artifacts

    model = standard_artifacts.Model()
    model.uri = str(pathlib.Path(config.output_root) / "Trainer" / dag_run)
    extra = pathlib.Path(model.uri) / "Format-Serving" / "assets.extra"
    extra.mkdir(parents=True)
    (extra / "hyperparameters.json").write_text(json.dumps({"learning_rate": learning_rate, "batch_size": 32}))
    recorder.execution(dag_run, "Trainer", outputs={"model": [model]}, airflow=True)


def _context(dag_run: str) -> dict:
    return {"dag_run": types.SimpleNamespace(run_id=dag_run)}


def _airflow_run(recorder, config, inputs, dag_run: str, learning_rate: float = 0.005) -> None:
    """A DAG run, with the callbacks Airflow calls: CsvCheck's and Trainer's on success, then the DAG's at the end."""
    _csv_check(recorder, dag_run, inputs.data_version)
    airflow_runner._RunStarted(config, inputs)(_context(dag_run))
    _trainer(recorder, config, dag_run, learning_rate)
    airflow_runner._Trained(config, inputs)(_context(dag_run))
    airflow_runner._RunEnded(config, inputs)(_context(dag_run))


def test_a_dag_run_records_commit_lock_data_hashes_and_hyperparameters_on_its_run_context(
        config, recorder, metadata_path):
    inputs = prepare(config)
    _csv_check(recorder, DAG_RUN, inputs.data_version)
    airflow_runner._RunStarted(config, inputs)(_context(DAG_RUN))
    store = metadata.open_store(str(metadata_path))
    assert provenance.run_context(store, RUN).type == "run"  # the context TFX's Airflow launcher made
    started = provenance.load(store, RUN)  # as the run starts: no Trainer yet
    assert started.data_files == inputs.data_files and not started.trained and started.hyperparameters == {}
    _trainer(recorder, config, DAG_RUN)
    airflow_runner._Trained(config, inputs)(_context(DAG_RUN))
    loaded = provenance.load(metadata.open_store(str(metadata_path)), RUN)
    assert loaded.trained and loaded.data_note == ""
    airflow_runner._RunEnded(config, inputs)(_context(DAG_RUN))
    assert provenance.load(metadata.open_store(str(metadata_path)), RUN) == loaded  # the end changes nothing
    assert loaded.git_commit == provenance.git_state()[0] and len(loaded.git_commit) == 40
    assert loaded.lock_sha256 == provenance.file_sha256(str(provenance.LOCK_FILE))
    assert loaded.data_files == inputs.data_files and len(loaded.data_files) == 2
    assert loaded.hyperparameters == {"learning_rate": 0.005, "batch_size": 32}
    assert [s.run_id for s in runs.list_runs(store, "taxi-tips")] == [RUN]


def test_the_data_hashed_as_the_run_started_stand_when_the_next_span_is_there_before_its_end(
        config, recorder, metadata_path):
    inputs = prepare(config)
    _csv_check(recorder, DAG_RUN, inputs.data_version)
    airflow_runner._RunStarted(config, inputs)(_context(DAG_RUN))
    _trainer(recorder, config, DAG_RUN)
    write_span(pathlib.Path(config.data_root), 3, shipped_lines(3)[:20])
    # Trainer's task, and on a deployment the DAG processor's end callback, come from new parses of the DAG
    # file: they see span 3.
    airflow_runner._Trained(config, prepare(config))(_context(DAG_RUN))
    airflow_runner._RunEnded(config, prepare(config))(_context(DAG_RUN))
    loaded = provenance.load(metadata.open_store(str(metadata_path)), RUN)
    assert loaded.spans == [1, 2] and loaded.data_files == inputs.data_files and loaded.data_note == ""
    assert loaded.trained


def test_compare_reads_two_airflow_runs_and_an_airflow_run_beside_a_local_one(config, recorder, metadata_path):
    inputs = prepare(config)
    _airflow_run(recorder, config, inputs, DAG_RUN)
    second = "manual__2026-11-02T00:00:00+00:00"
    _airflow_run(recorder, config, inputs, second, learning_rate=0.0123)
    store = metadata.open_store(str(metadata_path))
    text = compare.compare(store, "taxi-tips", RUN, f"taxi-tips.{second}")
    marked = [line.split() for line in text.splitlines()[:-1] if line.startswith("* ")]
    assert [words[1:] for words in marked] == [["learning_rate", "0.0050", "0.0123"]], text
    assert "sha256 span-2/data.csv" in text and "git commit" in text and "requirements.lock sha256" in text

    # A local run (LocalDagRunner's contexts, recorded by local_runner's calls) in the same store.
    from tests.unit.pipeline.governance.test_provenance import _recorded_run
    _recorded_run(recorder, config, "local-1", hyperparameters={"learning_rate": 0.005, "batch_size": 32})
    store = metadata.open_store(str(metadata_path))
    text = compare.compare(store, "taxi-tips", "local-1", RUN)
    assert text.splitlines()[-1] == "No differences beyond the run ids.", text


def test_without_a_start_record_the_end_records_hashes_only_if_they_are_what_csv_check_was_given(
        config, recorder, metadata_path, monkeypatch, tmp_path):
    inputs = prepare(config)
    _csv_check(recorder, DAG_RUN, "0123456789abcdef")  # CsvCheck failed (no start record), on other files
    airflow_runner._RunEnded(config, inputs)(_context(DAG_RUN))
    loaded = provenance.load(metadata.open_store(str(metadata_path)), RUN)
    assert loaded.data_files == {} and loaded.spans == [1, 2] and not loaded.trained
    assert loaded.data_note.startswith("span files changed while the run ran (data fingerprint 0123456789abcdef")
    assert loaded.git_commit != provenance.UNKNOWN  # the rest stands
    view = compare.view(metadata.open_store(str(metadata_path)), "taxi-tips", RUN)
    assert ("", "data note", loaded.data_note, loaded.data_note) in compare.rows(view, view)
    # `reproduce` of a version that run pushed refuses with the note, not as a run on remote data.
    monkeypatch.setattr(compare, "run_of_version", lambda store, version: RUN)
    with pytest.raises(reproduce.ReproduceError, match=r"cannot be re-run as recorded: span files changed while"):
        reproduce.plan(config, "1796000000", tmp_path / "reproduce")

    second = "manual__2026-11-02T00:00:00+00:00"
    _csv_check(recorder, second, inputs.data_version)  # the same files: recorded
    airflow_runner._RunEnded(config, inputs)(_context(second))
    loaded = provenance.load(metadata.open_store(str(metadata_path)), f"taxi-tips.{second}")
    assert loaded.data_files == inputs.data_files and loaded.data_note == ""


def test_a_span_trained_on_whose_content_changed_is_named_in_csv_checks_log(config, recorder, caplog):
    inputs = prepare(config)
    _airflow_run(recorder, config, inputs, DAG_RUN)
    changed = pathlib.Path(config.data_root) / "span-2" / "data.csv"
    changed.write_text(changed.read_text() + shipped_lines(2)[20])
    inputs = prepare(config)
    second = "scheduled__2026-11-02T00:00:00+00:00"
    _csv_check(recorder, second, inputs.data_version)
    with caplog.at_level(logging.WARNING, logger="airflow.task"):
        airflow_runner._RunStarted(config, inputs)(_context(second))
    [line] = [r.getMessage() for r in caplog.records if r.name == "airflow.task"]
    assert line.startswith(f"Data changed: span-2 file {changed} is not what run {RUN} trained on (sha256 ")
    assert provenance.load(metadata.open_store(config.metadata_path), f"taxi-tips.{second}").data_files == \
        inputs.data_files


def test_a_record_that_cannot_be_written_is_a_logged_warning_not_a_failed_callback(config, recorder, caplog):
    inputs = prepare(config)
    recorder.execution("other", "CsvCheck", airflow=True)  # the store exists; the DAG run has no context
    with caplog.at_level(logging.WARNING):
        airflow_runner._RunStarted(config, inputs)(_context(DAG_RUN))
        airflow_runner._Trained(config, inputs)(_context(DAG_RUN))
        airflow_runner._RunEnded(config, inputs)(_context(DAG_RUN))
        airflow_runner._RunEnded(config, inputs)({})  # no DAG run in the context at all
    warnings = [r.getMessage() for r in caplog.records if provenance.NOT_RECORDED in r.getMessage()]
    assert len(warnings) == 4, [r.getMessage() for r in caplog.records]
    assert all(f"run {RUN}: " in w and "no pipeline run" in w for w in warnings[:3]), warnings


def test_the_dags_csv_check_and_the_dag_itself_carry_the_callbacks(config, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))  # read when Airflow is first imported
    from pipeline.runners.airflow_runner import build_dag

    dag = build_dag(config)
    assert isinstance(dag.get_task("CsvCheck").on_success_callback, airflow_runner._RunStarted)
    assert isinstance(dag.get_task("Trainer").on_success_callback, airflow_runner._Trained)
    assert isinstance(dag.on_success_callback, airflow_runner._RunEnded)
    assert isinstance(dag.on_failure_callback, airflow_runner._RunEnded)


def test_dags_test_output_gives_the_run_id_and_the_callbacks_provenance_lines():
    output = "\n".join([
        "[2026-11-01T00:01:00] {airflow_runner.py:70} WARNING - Data changed: span-1 file /d/span-1/data.csv is "
        "not what run taxi-tips.x trained on (sha256 aaa then, bbb now); this run trains on the new content.",
        "WARNING:pipeline.runners.airflow_runner:Data changed: span-1 file /d/span-1/data.csv is "
        "not what run taxi-tips.x trained on (sha256 aaa then, bbb now); this run trains on the new content.",
        f"[2026-11-01T00:01:00] {{x.py:1}} WARNING - Warning: run {RUN}: {provenance.NOT_RECORDED}: boom",
        f"[2026-11-01T00:01:01] {{dagrun.py:900}} INFO - DagRun Finished: dag_id=taxi-tips, execution_date=2026-11-01 "
        f"00:00:00+00:00, run_id={DAG_RUN}, run_start_date=2026-11-01, state=success, external_trigger=False",
    ])
    assert airflow_runner.dag_run_id(output) == DAG_RUN
    assert airflow_runner.run_context_name("taxi-tips", DAG_RUN) == RUN
    from tfx.orchestration import data_types  # the name TFX's Airflow launcher gives the run's context
    assert data_types.PipelineInfo("taxi-tips", "/root", run_id=DAG_RUN).pipeline_run_context_name == RUN
    assert airflow_runner.provenance_lines(output) == [
        "Data changed: span-1 file /d/span-1/data.csv is not what run taxi-tips.x trained on (sha256 aaa then, "
        "bbb now); this run trains on the new content.",
        f"Warning: run {RUN}: {provenance.NOT_RECORDED}: boom"]
