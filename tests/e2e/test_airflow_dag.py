"""The pipeline as a real Airflow DAG: imports cleanly, mirrors the pipeline, and runs
end to end with `airflow dags test` (SQLite metadata database, one run after another)."""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from pipeline import metadata
from pipeline.cli import main as cli
from pipeline.config import load_config, to_toml
from pipeline.governance import provenance
from pipeline.pipeline import create_pipeline
from pipeline.prepare import prepare
from pipeline.runners.airflow_runner import airflow_environment, build_dag, run_with_airflow
from tests.conftest import SMALL_RUN_SETTINGS, shipped_lines, write_span

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# Airflow reads AIRFLOW_HOME when first imported (build_dag below imports it in this
# process); keep its files out of the user's home.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-tests-"))

AIRFLOW = str(pathlib.Path(sys.executable).parent / "airflow")
WORSE = 'hyperparameters={"learning_rate": 0.0}'


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("airflow_home")
    write_span(root / "data", 1, shipped_lines(4)[:1501])
    return root


def _config(home: pathlib.Path, *extra: str):
    return load_config(None, [f"data_root={home / 'data'}", f"output_root={home / 'out'}",
                              *SMALL_RUN_SETTINGS, *extra])


def _versions(home: pathlib.Path) -> list[str]:
    serving = home / "out" / "serving" / "taxi-tips"
    return sorted(p.name for p in serving.iterdir()) if serving.exists() else []


def _last_run_states(home: pathlib.Path) -> dict[str, str]:
    store = metadata.open_store(str(home / "out" / "metadata.db"))
    return {node.node_id: node.state for node in metadata.node_runs(store, metadata.run_ids(store, "taxi-tips")[-1])}


def test_dag_file_imports_without_errors(home):
    config_path = home / "import.toml"
    config_path.write_text(to_toml(_config(home)))
    env = airflow_environment(str(config_path), str(home / "airflow-import"))
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    listed = subprocess.run([AIRFLOW, "dags", "list-import-errors"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "No data found" in listed.stdout, listed.stdout
    dags = subprocess.run([AIRFLOW, "dags", "list"], env=env, capture_output=True, text=True)
    assert "taxi-tips" in dags.stdout


def test_dag_tasks_and_edges_are_the_pipelines(home):
    config = _config(home)
    dag = build_dag(config)
    components = create_pipeline(config, prepare(config)).components
    assert set(dag.task_ids) == {component.id for component in components}
    for component in components:
        assert dag.get_task(component.id).upstream_task_ids == {up.id for up in component.upstream_nodes}
    assert dag.get_task("Transform").upstream_task_ids >= {"DataGate"}
    assert dag.schedule_interval == "@daily" and dag.catchup is False


def _record(home: pathlib.Path, run_id: str) -> provenance.Provenance | None:
    return provenance.load(metadata.open_store(str(home / "out" / "metadata.db")), run_id)


def test_dag_run_trains_and_pushes(home, capsys):
    assert run_with_airflow(_config(home), "2026-11-01T00:00:00") == 0
    assert len(_versions(home)) == 1
    assert _last_run_states(home)["Pusher"] == "COMPLETE"
    # The DAG's end-of-run callback recorded the run's provenance on the run context TFX's Airflow launcher made.
    record = _record(home, "taxi-tips.manual__2026-11-01T00:00:00+00:00")
    assert record is not None, capsys.readouterr().out
    # The checkout's commit then (others may commit here meanwhile: it is HEAD or an ancestor of it).
    ancestor = subprocess.run(["git", "-C", str(provenance.REPO_ROOT), "merge-base", "--is-ancestor",
                               record.git_commit, "HEAD"], capture_output=True)
    assert len(record.git_commit) == 40 and ancestor.returncode == 0 and record.git_dirty in ("yes", "no"), record
    assert record.lock_sha256 == provenance.lock_sha256() != provenance.UNKNOWN
    span = home / "data" / "span-1" / "data.csv"
    assert record.spans == [1] and record.data_files == {str(span): provenance.file_sha256(str(span))}
    assert record.trained and record.hyperparameters.get("learning_rate", 0) > 0
    assert provenance.NOT_RECORDED not in capsys.readouterr().out
    # Written by CsvCheck's success callback as the run started, completed by Trainer's and the DAG's own.
    log = (home / "out" / "airflow" / "dags-test-2026-11-01T000000.log").read_text()
    assert "Executing callback at index 0: _RunStarted" in log and "Executing callback at index 0: _Trained" in log
    assert "end of a taxi-tips DAG run" in log


def _cli(home: pathlib.Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*args, "--set", f"output_root={home / 'out'}", "--set", f"data_root={home / 'data'}"])
    return code, out.getvalue()


def test_worse_model_under_airflow_is_not_pushed(home):
    before = _versions(home)
    assert run_with_airflow(_config(home, WORSE), "2026-11-02T00:00:00") == 0
    states = _last_run_states(home)
    assert states["Trainer"] == "COMPLETE"
    assert _versions(home) == before
    # `compare` on two Airflow runs (the first named by the version it pushed): only the learning rate, the
    # pushed version and the metrics differ; the data, code and environment lines are there and equal.
    assert _record(home, "taxi-tips.manual__2026-11-02T00:00:00+00:00").hyperparameters["learning_rate"] == 0.0
    code, comparison = _cli(home, "compare", before[0], "taxi-tips.manual__2026-11-02T00:00:00+00:00")
    assert code == 0, comparison
    marked = {line.split()[1] for line in comparison.splitlines()[:-1] if line.startswith("* ")}
    assert "learning_rate" in marked, comparison
    assert marked <= {"learning_rate", "pushed", "AUC", "AUC,", "calibration", "precision", "recall"}, comparison
    for line in ("sha256 span-1/data.csv", "git commit", "requirements.lock sha256", "tensorflow"):
        assert f"  {line} " in comparison, comparison


def test_run_with_no_new_data_does_no_training(home):
    assert run_with_airflow(_config(home, WORSE), "2026-11-03T00:00:00") == 0
    assert _last_run_states(home)["Trainer"] == "CACHED"


def test_new_span_is_trained_on_by_the_next_run(home):
    write_span(home / "data", 2, [shipped_lines(4)[0]] + shipped_lines(4)[1501:2501])
    assert run_with_airflow(_config(home, WORSE), "2026-11-04T00:00:00") == 0
    states = _last_run_states(home)
    assert states["CsvExampleGen"] == "COMPLETE" and states["Trainer"] == "COMPLETE"


def test_span_that_breaks_the_schema_fails_the_dag_run_at_the_gate(home, capsys):
    before = _versions(home)
    lines = shipped_lines(3)
    write_span(home / "data", 3, [lines[0]] + [row.replace(",Cash,", ",Bitcoin,") for row in lines[1:1001]])
    assert run_with_airflow(_config(home), "2026-11-05T00:00:00") == 1
    output = capsys.readouterr().out
    assert "task DataGate: FAILED" in output and "payment_type" in output
    assert "task Transform" not in output
    assert _versions(home) == before
    # The DAG's failure callback tells Prometheus (the DataGateStopped alert reads this series).
    status = (pathlib.Path(_config(home).monitoring_dir) / "pipeline.prom").read_text()
    assert 'taxi_data_gate_stopped{pipeline="taxi-tips"} 1.0' in status
