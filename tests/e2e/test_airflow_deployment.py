"""The pipeline's DAG on a real Airflow deployment: PostgreSQL, Redis, `airflow scheduler`, two Celery workers.

The deployment is the one `make stack-start` gives people (pipeline/deployment/local_stack.py),
on free loopback ports in a temp folder, with Debian's postgresql and redis-server (installed
by the setup when missing). Runs go through `taxi-pipeline run --runner airflow --airflow-mode
scheduler`, which triggers and follows; the scheduler and the workers run the tasks. Airflow's
own database is read directly to see what the scheduler did (which run ran when, which process
ran a task).
"""
from __future__ import annotations

import configparser
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import psycopg2
import pytest

from pipeline import metadata
from pipeline.deployment import services
from pipeline.governance import provenance
from tests.conftest import REPO, SMALL_RUN_SETTINGS, shipped_lines, write_span

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PYTHON = sys.executable
CLI = str(pathlib.Path(sys.executable).parent / "taxi-pipeline")
# Short enough for the test, long enough for a heartbeat on a busy machine (Airflow beats every 5 s).
ZOMBIE_SECONDS = 45


@dataclass
class Stack:
    home: pathlib.Path
    env: dict
    pids: dict

    @property
    def data(self) -> pathlib.Path:
        return self.home / "data"

    def versions(self) -> list[str]:
        serving = self.home / "out" / "serving" / "taxi-tips"
        return sorted(p.name for p in serving.iterdir()) if serving.exists() else []

    def airflow_db(self):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.home / "airflow.cfg")
        return psycopg2.connect(parser["database"]["sql_alchemy_conn"].replace("+psycopg2", ""))

    def query(self, sql: str, *args) -> list[tuple]:
        with self.airflow_db() as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def run(self, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([CLI, "run", "--runner", "airflow", "--airflow-mode", "scheduler"], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, **kwargs)


def _local_stack(action: str, home: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "pipeline.deployment.local_stack", action, "--home", str(home), *args],
                          capture_output=True, text=True, timeout=900, cwd=REPO)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # Outside pytest's root-only temp tree: as root, PostgreSQL runs as the postgres user.
    home = pathlib.Path(tempfile.mkdtemp(prefix="taxi-stack-"))
    home.chmod(0o755)
    try:
        write_span(home / "data", 1, shipped_lines(4)[:1501])
        settings = [f"data_root={home / 'data'}", f"output_root={home / 'out'}", *SMALL_RUN_SETTINGS]
        started = _local_stack("start", home, "--zombie-seconds", str(ZOMBIE_SECONDS),
                               *[f"--set={setting}" for setting in settings])
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        exported = dict(line.removeprefix("export ").split("=", 1)
                        for line in (home / "stack.env").read_text().splitlines())
        env = {**os.environ, **exported}
        env.pop(metadata.PASSWORD_VARIABLE, None)
        yield Stack(home, env, json.loads((home / "stack.json").read_text())["pids"])
    finally:
        _local_stack("stop", home)
        # The deployment's logs outlive it in pytest's temp folder, to read after a failure.
        if (home / "logs").exists():
            shutil.copytree(home / "logs", tmp_path_factory.mktemp("stack_logs"), dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)


def _finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def _run_id(output: str) -> str:
    return output.split("triggered DAG run ", 1)[1].split()[0]


def _tasks_by_worker(stack: Stack, run_id: str) -> dict[str, set[str]]:
    """Which tasks of `run_id` each worker executed, from the workers' own logs."""
    ran = {}
    for name in ("worker-1", "worker-2"):
        log = (stack.home / "logs" / f"{name}.log").read_text(errors="replace")
        ran[name] = {line.split("'taxi-tips', '", 1)[1].split("'", 1)[0] for line in log.splitlines()
                     if "Executing command in Celery" in line and run_id in line}
    return ran


@pytest.mark.timeout(1200)
def test_run_on_the_deployment_pushes_with_tasks_spread_over_both_workers(stack, monkeypatch):
    monkeypatch.setenv(metadata.PASSWORD_FILE_VARIABLE, stack.env[metadata.PASSWORD_FILE_VARIABLE])
    code, output = _finish(stack.run())
    assert code == 0, output[-4000:]
    assert "task Evaluator: SUCCESS" in output and "task Pusher: SUCCESS" in output
    assert "Blessing: BLESSED" in output and "Pushed: " in output
    assert len(stack.versions()) == 1
    run_id = _run_id(output)
    by_worker = _tasks_by_worker(stack, run_id)
    assert by_worker["worker-1"] and by_worker["worker-2"], by_worker
    assert "Trainer" in by_worker["worker-1"] | by_worker["worker-2"]
    # ML Metadata on the same PostgreSQL server holds the run, Pusher complete.
    config_store = metadata.open_store(_metadata_url(stack))
    tfx_run = next(r for r in metadata.run_ids(config_store, "taxi-tips") if r.endswith(run_id))
    assert {n.node_id: n.state for n in metadata.node_runs(config_store, tfx_run)}["Pusher"] == "COMPLETE"
    # Its provenance, written on the workers by CsvCheck's task as the run started and Trainer's when it was done.
    record = provenance.load(config_store, tfx_run)
    assert record is not None and record.trained and record.hyperparameters, record
    assert len(record.git_commit) == 40 and record.lock_sha256 == provenance.lock_sha256()
    assert list(record.data_files) == [str(stack.data / "span-1" / "data.csv")] and not record.data_note
    # The database password is in airflow.cfg (0600) and its own file, nowhere in a log.
    password = (stack.home / "postgres-server" / "password").read_text().strip()
    assert oct((stack.home / "airflow.cfg").stat().st_mode & 0o777) == "0o600"
    for log in (stack.home / "logs").rglob("*.log"):
        assert password not in log.read_text(errors="replace"), log


def _metadata_url(stack: Stack) -> str:
    import tomllib

    return tomllib.loads((stack.home / "pipeline.toml").read_text())["metadata_store"]


@pytest.mark.timeout(1800)
def test_a_worker_killed_mid_task_is_retried_elsewhere_and_a_second_run_waits_its_turn(stack):
    lines = shipped_lines(4)
    write_span(stack.data, 2, [lines[0]] + lines[1501:3001])  # new data: the next run trains
    first = stack.run()
    time.sleep(3)
    second = stack.run()  # triggered while the first runs: max_active_runs=1 queues it
    # Kill the worker running the first run's Trainer, with its task process (its whole process group).
    killed = None
    deadline = time.monotonic() + 900
    while killed is None and time.monotonic() < deadline and first.poll() is None:
        rows = stack.query("SELECT ti.run_id, ti.pid FROM task_instance ti JOIN dag_run r ON r.run_id = ti.run_id "
                           "WHERE ti.task_id = 'Trainer' AND ti.state = 'running' AND ti.pid IS NOT NULL "
                           "ORDER BY r.id")
        for _, pid in rows:
            session = _session_of(pid)
            worker = next((name for name, leader in stack.pids.items() if leader == session), None)
            if worker:  # the machine is lost: the worker and every process it started
                for member in services.session_members(session):
                    os.kill(member, signal.SIGKILL)
                killed = worker
                break
        time.sleep(1)
    assert killed, "the first run's Trainer was never seen running on a worker"
    code, output = _finish(first, 1200)
    assert code == 0, output[-4000:]
    assert "task Trainer: UP_FOR_RETRY" in output and "task Trainer: SUCCESS" in output
    first_id = _run_id(output)
    survivor = "worker-2" if killed == "worker-1" else "worker-1"
    assert "Trainer" in _tasks_by_worker(stack, first_id)[survivor]
    second_code, second_output = _finish(second, 1200)
    assert second_code == 0, second_output[-4000:]
    second_id = _run_id(second_output)
    (first_start, first_end), = stack.query("SELECT start_date, end_date FROM dag_run WHERE run_id = %s", first_id)
    (second_start, _), = stack.query("SELECT start_date, end_date FROM dag_run WHERE run_id = %s", second_id)
    assert second_start >= first_end, (first_start, first_end, second_start)
    # Nothing half-pushed: every version folder is a whole SavedModel.
    for version in stack.versions():
        folder = stack.home / "out" / "serving" / "taxi-tips" / version
        assert version.isdigit() and (folder / "saved_model.pb").exists() and (folder / "variables").is_dir()
    status = _local_stack("status", stack.home)
    assert status.returncode == 1 and f"{killed:10} PID" in status.stdout and "NOT RUNNING" in status.stdout


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.timeout(1200)
def test_a_span_that_breaks_the_schema_fails_the_run_at_the_gate(stack):
    before = stack.versions()
    lines = shipped_lines(3)
    write_span(stack.data, 3, [lines[0]] + [row.replace(",Cash,", ",Bitcoin,") for row in lines[1:1001]])
    code, output = _finish(stack.run())
    assert code == 1, output[-4000:]
    assert "task DataGate: FAILED" in output and "payment_type" in output and "DAG run failed" in output
    assert "task Transform" not in output
    assert stack.versions() == before


@pytest.mark.timeout(600)
def test_stop_ends_every_process_of_the_deployment(stack):
    stopped = _local_stack("stop", stack.home)
    assert stopped.returncode == 0, stopped.stderr
    assert not (stack.home / "stack.json").exists()
    for name, pid in stack.pids.items():
        assert not services.is_running(pid), name
        # Each was started in a session of its own: nothing it started is left either.
        assert services.session_members(pid) == [], name
