"""The pipeline with its ML Metadata on a real PostgreSQL server (Debian's, private, on loopback).

The same LocalDagRunner run as everywhere else, with `metadata_store` naming the server and
the password coming from a file: the first run pushes, the unchanged rerun is served from
the cache recorded in PostgreSQL, and the CLI's readers and writers (runs, lineage, rollback)
work against it. Nothing is written to a SQLite file.
"""
from __future__ import annotations

import io
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from pipeline import metadata
from pipeline.config import load_config
from pipeline.runners.local_runner import run_local
from tests.conftest import REPO, SMALL_RUN_SETTINGS, shipped_lines, write_span
from tests.services.postgres_service import postgres_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server():
    with postgres_server() as running:
        yield running


@pytest.fixture(scope="module")
def home(tmp_path_factory, server) -> pathlib.Path:
    root = tmp_path_factory.mktemp("postgres_home")
    write_span(root / "data", 1, shipped_lines(4)[:1501])
    return root


@pytest.fixture
def password_env(server, monkeypatch):
    monkeypatch.setenv(metadata.PASSWORD_FILE_VARIABLE, str(server.password_file))
    monkeypatch.delenv(metadata.PASSWORD_VARIABLE, raising=False)


def _settings(home: pathlib.Path, server) -> list[str]:
    return [f"data_root={home / 'data'}", f"output_root={home / 'out'}", "spans=latest",
            f"metadata_store={server.url('taxi_metadata')}", *SMALL_RUN_SETTINGS]


def _run(home, server):
    out = io.StringIO()
    result = run_local(load_config(None, _settings(home, server)), out=out)
    return result, out.getvalue()


def _states(server, run_id: str) -> dict[str, str]:
    store = metadata.open_store(server.url("taxi_metadata"))
    return {node.node_id: node.state for node in metadata.node_runs(store, run_id)
            if not node.node_id.endswith("_resolver")}


def _cli(home, server, *args: str) -> subprocess.CompletedProcess:
    settings = [option for setting in _settings(home, server) for option in ("--set", setting)]
    return subprocess.run([sys.executable, "-m", "pipeline", *args, *settings], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


@pytest.mark.timeout(900)
def test_first_run_pushes_and_the_rerun_is_cached_in_postgres(home, server, password_env):
    result, output = _run(home, server)
    assert result.succeeded and result.pushed_version, output
    assert "Blessing: BLESSED" in output
    assert set(_states(server, result.run_id).values()) == {"COMPLETE"}
    assert not (home / "out" / "metadata.db").exists(), "the store must be the server, not a SQLite file"
    password = server.password_file.read_text().strip()
    assert password not in output
    assert "was not recorded" not in output, output  # the run's provenance went into the server store too
    # TFX logs the whole connection config into the run's log: the password is redacted there.
    log = pathlib.Path(result.log_path).read_text()
    assert "Using connection config" in log and password not in log and 'password: "***"' in log

    again, output = _run(home, server)
    assert again.succeeded and "Nothing new to push" in output, output
    states = _states(server, again.run_id)
    assert len(states) == 15 and set(states.values()) == {"CACHED"}, states


@pytest.mark.timeout(300)
def test_runs_lineage_and_rollback_read_and_write_postgres(home, server, password_env):
    runs = _cli(home, server, "runs")
    assert runs.returncode == 0, runs.stdout + runs.stderr
    listed = [line for line in runs.stdout.splitlines() if "pushed" in line or "nothing new" in line]
    assert len(listed) == 2, runs.stdout
    version = next(p.name for p in (home / "out" / "serving" / "taxi-tips").iterdir())

    lineage = _cli(home, server, "lineage", version)
    assert lineage.returncode == 0 and "Trainer" in lineage.stdout and "span-1" in lineage.stdout, lineage.stdout

    rollback = _cli(home, server, "rollback", "--to", version)
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert f"version {version} serves again" in rollback.stdout
    runs = _cli(home, server, "runs")
    assert "rollback" in runs.stdout.lower(), runs.stdout
    for done in (runs, lineage, rollback):  # no connection chatter, no password
        assert "Connecting to database" not in done.stderr
        assert server.password_file.read_text().strip() not in done.stdout + done.stderr


@pytest.mark.timeout(300)
def test_a_wrong_password_is_a_clear_error_and_records_nothing(home, server, tmp_path, monkeypatch):
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password\n")
    monkeypatch.setenv(metadata.PASSWORD_FILE_VARIABLE, str(wrong))
    runs = _cli(home, server, "runs")
    assert runs.returncode != 0
    text = runs.stdout + runs.stderr
    assert "cannot open ML Metadata at postgresql://postgres@127.0.0.1" in text, text
    assert metadata.PASSWORD_FILE_VARIABLE in text and "not-the-password" not in text
    assert "Traceback" not in text


def test_a_password_in_the_setting_is_refused_before_anything_runs(home, server):
    url = server.url("taxi_metadata").replace("postgres@", "postgres:secret@")
    with pytest.raises(ValueError, match=r"postgres:\*\*\*@127.0.0.1.*TAXI_METADATA_PASSWORD") as raised:
        load_config(None, [f"data_root={home / 'data'}", f"metadata_store={url}"])
    assert "secret" not in str(raised.value)


@pytest.mark.timeout(600)
def test_a_stopped_gate_is_recorded_as_failed_with_its_own_message(home, server, password_env):
    """TFX records a failure's message as JSON with backslashes, which ML Metadata 1.16 cannot
    store in PostgreSQL: without pipeline/tfx_fixes.py the run ended on an SQL syntax error."""
    header, rows = shipped_lines(4)[0], shipped_lines(4)[1501:2501]
    write_span(home / "data", 2, [header] + [row.replace(",Cash,", ",Bitcoin,") for row in rows])
    try:
        result, output = _run(home, server)
    finally:
        shutil.rmtree(home / "data" / "span-2")
    assert not result.succeeded
    assert "DataGate failed" in output and "Bitcoin" in output, output
    assert "syntax error" not in output, output
    assert _states(server, result.run_id)["DataGate"] == "FAILED"
