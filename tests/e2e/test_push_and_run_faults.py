"""Faults in the push and concurrent runs, with the real pipeline (LocalDagRunner, ML Metadata, the Pusher).

One pipeline home, in file order, each test starting from what the previous one left:
1. a first run whose Pusher fails right after renaming the version into place (in-process);
2. a run killed outright at the same point (`taxi-pipeline run` in a subprocess; upstream is cached);
3. the next run, during which a second run on the same folder is refused; it cleans up and pushes.
The faults are injected with FAULT_ENV, which the real executor reads; everything else is as in production.
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from pipeline import metadata
from pipeline.cli.main import main
from pipeline.config import load_config
from pipeline.evaluation.atomic_pusher import FAULT_ENV
from pipeline.governance import lineage
from pipeline.runners.local_runner import run_local
from pipeline.runners.run_lock import LOCK_FILE
from serving.server.model_store import AVAILABLE, ModelStore
from tests.conftest import REPO, SMALL_RUN_SETTINGS, shipped_lines, write_span

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("push_faults_home")
    write_span(root / "data", 1, shipped_lines(4)[:1501])
    return root


def _settings(home: pathlib.Path) -> list[str]:
    return [f"data_root={home / 'data'}", f"output_root={home / 'out'}", "spans=latest", *SMALL_RUN_SETTINGS]


def _serving(home: pathlib.Path) -> pathlib.Path:
    return home / "out" / "serving" / "taxi-tips"


def _entries(home: pathlib.Path) -> list[str]:
    """Everything in the serving folder, hidden names included."""
    return sorted(os.listdir(_serving(home))) if _serving(home).exists() else []


def _recorded(home: pathlib.Path) -> list[str]:
    return list(lineage.pushed_models(metadata.open_store(str(home / "out" / "metadata.db"))))


def _runs(home: pathlib.Path, capsys) -> list[str]:
    """`taxi-pipeline runs`, one line per run after the header."""
    capsys.readouterr()
    assert main(["runs", *[arg for setting in _settings(home) for arg in ("--set", setting)]]) == 0
    return capsys.readouterr().out.splitlines()[1:]


def _cli_run(home: pathlib.Path, fault: str = "") -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    command = [sys.executable, "-m", "pipeline", "run", *[arg for s in _settings(home) for arg in ("--set", s)]]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _holder_pid(home: pathlib.Path) -> int | None:
    try:
        return json.loads((home / "out" / LOCK_FILE).read_text()).get("pid")
    except ValueError:  # empty, or caught mid-write
        return None


def test_a_pusher_failing_after_the_rename_leaves_no_version_and_the_run_says_nothing_was_pushed(
        home, monkeypatch, capsys):
    monkeypatch.setenv(FAULT_ENV, "after_rename")
    out = io.StringIO()
    result = run_local(load_config(None, _settings(home)), out=out)
    output = out.getvalue()
    assert not result.succeeded and result.pushed_version is None, output
    assert "Blessing: BLESSED" not in output  # the run stopped: no outcome is printed as if it had finished
    assert "Pusher failed: injected push fault after_rename" in output
    assert f"Nothing was pushed; the serving dir {_serving(home)} is unchanged." in output
    assert _entries(home) == [], "the version was taken back out and its copy deleted"
    assert _recorded(home) == []
    assert _runs(home, capsys)[-1].endswith("FAILED at Pusher, nothing pushed")


def test_a_run_killed_after_the_rename_is_reported_as_stopped_in_pusher(home, capsys):
    run = _cli_run(home, fault="after_rename:kill")
    output, _ = run.communicate(timeout=1500)
    assert run.returncode == -9, output  # SIGKILL: no clean-up of any kind ran
    [version] = _entries(home)  # renamed into place, served by any polling server, unknown to ML Metadata
    assert version.isdigit() and _recorded(home) == []
    holder = json.loads((home / "out" / LOCK_FILE).read_text())
    assert holder["pid"] == run.pid and holder["serving_versions"] == []
    assert _runs(home, capsys)[-1].endswith(
        "incomplete (stopped in Pusher): nothing recorded as pushed; the next run withdraws any unrecorded copy")
    (home / "killed_version").write_text(version)


def test_the_next_run_withdraws_the_unrecorded_version_pushes_and_keeps_a_second_run_out(home, capsys):
    killed = json.loads((home / "out" / LOCK_FILE).read_text())["pid"]
    unrecorded = (home / "killed_version").read_text()
    runs_before = len(_runs(home, capsys))
    run = _cli_run(home)
    deadline = time.monotonic() + 600
    while _holder_pid(home) != run.pid:
        assert run.poll() is None, run.stdout.read()
        assert time.monotonic() < deadline, "the run never took the lock"
        time.sleep(0.1)
    # A second run on the same output folder while the first holds it: refused, naming the first.
    capsys.readouterr()
    assert main(["run", *[arg for s in _settings(home) for arg in ("--set", s)]]) == 2
    refusal = capsys.readouterr().err
    assert refusal.startswith(f"taxi-pipeline: {home / 'out'} is in use by another pipeline run (pid {run.pid} on ")
    assert "command: " in refusal and " run --set " in refusal
    output, _ = run.communicate(timeout=1500)
    assert run.returncode == 0, output
    assert f"ended without releasing it (pid {killed} on " in output
    assert (f"Version {unrecorded} it copied to {_serving(home)} was never recorded in ML Metadata: taken out of "
            "the serving folder.") in output
    [pushed] = _recorded(home)
    assert f"Pushed: {_serving(home) / pushed}" in output
    assert _entries(home) == [pushed], "only the recorded version; no staging folder, no unrecorded one"
    lines = _runs(home, capsys)
    assert len(lines) == runs_before + 1, "the refused run recorded nothing"
    assert lines[-1].endswith(f"pushed {pushed}")
    assert (home / "out" / LOCK_FILE).read_text() == "", "released cleanly"
    store = ModelStore("taxi-tips", str(_serving(home)), poll_seconds=0)
    store.poll_once()
    assert [(s.version, s.state, s.error) for s in store.statuses()] == [(int(pushed), AVAILABLE, "")]
