"""The local deployment's pieces that need no server: its Airflow settings file, the settings it
gives the pipeline, and stopping a process with everything it started."""
from __future__ import annotations

import configparser
import os
import pathlib
import subprocess
import sys
import time

import pytest

from pipeline.deployment import local_stack, services

pytestmark = pytest.mark.timeout(120)


def test_airflow_cfg_is_private_and_names_the_deployments_services(tmp_path):
    local_stack._write_airflow_cfg(tmp_path, "celery", 5433, "s3cret", "redis://127.0.0.1:6380/0", retries=1,
                                   zombie_seconds=90)
    path = tmp_path / "airflow.cfg"
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the database password
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(path)
    assert cfg["core"]["executor"] == "CeleryExecutor"
    assert cfg["database"]["sql_alchemy_conn"] == "postgresql+psycopg2://postgres:s3cret@127.0.0.1:5433/airflow"
    assert cfg["celery"]["broker_url"] == "redis://127.0.0.1:6380/0"
    assert cfg["celery"]["result_backend"] == "db+postgresql://postgres:s3cret@127.0.0.1:5433/airflow"
    assert cfg["celery"]["celery_config_options"] == "pipeline.deployment.celery_worker.CELERY_CONFIG"
    assert cfg["scheduler"]["scheduler_zombie_task_threshold"] == "90"
    assert cfg["core"]["default_task_retries"] == "1"
    assert pathlib.Path(cfg["core"]["dags_folder"]).joinpath("taxi_tips_dag.py").exists()


def test_local_executor_has_no_broker(tmp_path):
    local_stack._write_airflow_cfg(tmp_path, "local", 5433, "pw", None, retries=0, zombie_seconds=120)
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(tmp_path / "airflow.cfg")
    assert cfg["core"]["executor"] == "LocalExecutor" and "celery" not in cfg


def test_a_schedule_is_kept_only_when_the_settings_give_one(tmp_path):
    settings = tmp_path / "pipeline.toml"
    settings.write_text('airflow_schedule = "@hourly"\n')
    assert local_stack._sets(str(settings), [], "airflow_schedule")
    assert local_stack._sets(None, ["airflow_schedule=@daily"], "airflow_schedule")
    assert not local_stack._sets(None, ["train_steps=10"], "airflow_schedule")


def test_stop_session_ends_a_process_and_what_it_started_in_other_groups():
    # A parent in a session of its own whose child moves to a process group of its own, as
    # Airflow's task runner does: SIGTERM to the parent alone would leave the child behind.
    script = ("import os, subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import os, time; os.setpgid(0, 0); time.sleep(600)'])\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while len(services.session_members(parent.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(services.session_members(parent.pid)) == {parent.pid, child}
    assert services.stop_session(parent.pid, seconds=5)
    assert services.session_members(parent.pid) == []
    assert not services.is_running(child)


def test_status_and_stop_without_a_deployment_say_so(tmp_path, capsys):
    assert local_stack.main(["status", "--home", str(tmp_path)]) == 1
    assert local_stack.main(["stop", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "not running: no" in out and "nothing to stop" in out


def _run_on_deployment(env: dict) -> subprocess.CompletedProcess:
    cli = pathlib.Path(sys.executable).parent / "taxi-pipeline"
    return subprocess.run([str(cli), "run", "--runner", "airflow", "--airflow-mode", "scheduler"], env=env,
                          capture_output=True, text=True, timeout=100)


def test_scheduler_mode_without_a_deployment_says_what_to_set(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "AIRFLOW_HOME"}
    done = _run_on_deployment({**env, "AIRFLOW_HOME": str(tmp_path)})  # no airflow.cfg there
    assert done.returncode == 2
    assert "set AIRFLOW_HOME to its Airflow home" in done.stderr and "Traceback" not in done.stderr


def test_scheduler_mode_with_the_deployments_database_down_says_so_in_one_line(tmp_path):
    port = services.free_port()  # nobody listens there
    (tmp_path / "airflow.cfg").write_text(
        f"[database]\nsql_alchemy_conn = postgresql+psycopg2://postgres:pw@127.0.0.1:{port}/airflow\n")
    done = _run_on_deployment({**os.environ, "AIRFLOW_HOME": str(tmp_path)})
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot reach the Airflow database of the deployment at {tmp_path}" in done.stderr
    assert f"port {port} failed" in done.stderr and "Traceback" not in done.stderr
    assert "pw@" not in done.stderr
