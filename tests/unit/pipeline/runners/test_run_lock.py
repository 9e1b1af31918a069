"""One run at a time per output folder: the lock, what a refused run is told, and what a crashed run leaves."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from tfx.types import standard_artifacts

from pipeline.cli.main import main
from pipeline.config import load_config
from pipeline.runners.local_runner import run_local
from pipeline.runners.run_lock import LOCK_FILE, RunLockedError, exclusive_run, run_lock
from tests.conftest import SHIPPED_SPANS
from tests.unit.pipeline.conftest import Recorder

# A run elsewhere, as the lock file sees it: flock held, its holder record written, alive until stdin closes.
HOLDER = textwrap.dedent("""
    import fcntl, json, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": "ci-host", "started": "2026-12-01 09:00:00 UTC",
                             "command": "taxi-pipeline run --set spans=1", "serving_versions": [1]}).encode())
    print("locked", flush=True)
    sys.stdin.read()
""")


def _config(output_root):
    return load_config(None, [f"output_root={output_root}", f"data_root={SHIPPED_SPANS}"])


@pytest.fixture
def other_run(tmp_path):
    """Another process holding tmp_path's run lock."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / LOCK_FILE)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "locked\n"
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_second_run_refuses_naming_the_run_that_holds_the_folder(tmp_path, other_run):
    out = io.StringIO()
    with pytest.raises(RunLockedError) as refused:
        run_local(_config(tmp_path), out=out)
    message = str(refused.value)
    assert f"{tmp_path} is in use by another pipeline run (pid {other_run.pid} on ci-host, " \
           "started 2026-12-01 09:00:00 UTC, command: taxi-pipeline run --set spans=1)" in message
    assert "set another output_root" in message
    assert out.getvalue() == "", "a refused run starts nothing"
    assert not (tmp_path / "logs").exists() and not (tmp_path / "pipeline").exists()


def test_the_command_line_prints_the_refusal_and_exits_with_2(tmp_path, other_run, capsys):
    assert main(["run", "--set", f"output_root={tmp_path}", "--set", f"data_root={SHIPPED_SPANS}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"taxi-pipeline: {tmp_path} is in use by another pipeline run (pid {other_run.pid}")


def test_the_lock_is_free_once_the_holder_exits_or_crashes(tmp_path, other_run):
    other_run.send_signal(signal.SIGKILL)  # a crash: no clean-up runs, the file keeps its record
    other_run.wait()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == other_run.pid
    with run_lock(str(tmp_path)) as lock:
        assert lock.previous["pid"] == other_run.pid, "the stale record tells the next run a run crashed"
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert (tmp_path / LOCK_FILE).read_text() == "", "a clean end leaves nothing to recover"
    with run_lock(str(tmp_path)) as lock:
        assert lock.previous is None


def test_a_holder_in_the_same_process_is_named_too(tmp_path):
    with run_lock(str(tmp_path)):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()} on .*, started .* UTC, command: "):
            with run_lock(str(tmp_path)):
                pass
    with run_lock(str(tmp_path)):  # released by the first block's end
        pass


def _pushed(recorder: Recorder, run_id: str, version: str):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = f"/archive/{version}"
    pushed.set_int_custom_property("pushed", 1)
    pushed.set_string_custom_property("pushed_version", version)
    recorder.execution(run_id, "Pusher", outputs={"pushed_model": [pushed]})


def _make_version(serving, version):
    (serving / str(version)).mkdir(parents=True)
    (serving / str(version) / "saved_model.pb").write_bytes(b"model")


def test_the_next_run_withdraws_a_version_a_crashed_run_left_unrecorded(tmp_path, recorder):
    config = _config(tmp_path)
    serving = tmp_path / "serving" / "taxi-tips"
    _make_version(serving, 1)  # there before the crashed run
    _make_version(serving, 2)  # pushed and recorded by it
    _pushed(recorder, "run-1", "2")
    _make_version(serving, 3)  # renamed into place, then the process was killed before ML Metadata recorded it
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 4242, "host": "h", "started": "2026-12-01 09:00:00 UTC",
                                                  "command": "taxi-pipeline run", "serving_versions": [1]}))
    out = io.StringIO()
    with exclusive_run(config, out) as guard:
        assert sorted(os.listdir(serving)) == ["1", "2"]
        assert guard.before == {1, 2}
    assert "The previous run on" in out.getvalue() and "pid 4242 on h" in out.getvalue()
    assert f"Version 3 it copied to {serving} was never recorded in ML Metadata" in out.getvalue()


def test_a_version_that_appears_unrecorded_during_a_run_is_withdrawn_after_it(tmp_path, recorder):
    config = _config(tmp_path)
    serving = tmp_path / "serving" / "taxi-tips"
    out = io.StringIO()
    with exclusive_run(config, out) as guard:
        _make_version(serving, 7)  # Pusher renamed it, then failed to record it
        _make_version(serving, 8)
        _pushed(recorder, "run-1", "8")
        check = guard.check()
    assert check.withdrawn == [7] and check.pushed == [8]
    assert os.listdir(serving) == ["8"]
