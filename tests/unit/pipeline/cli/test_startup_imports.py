"""The commands people run many times a day answer without starting TensorFlow, TFX or Beam.

Each command runs as a user runs it, in a process of its own, under `python -X importtime`:
Python then lists every module the command imported, and none may be one of those (they
cost seconds of start-up and print CUDA and oneDNN notices before any answer).
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata
from tests.conftest import REPO

HEAVY = ("tensorflow", "tfx", "apache_beam")

pytestmark = pytest.mark.timeout(120)


def imported_heavy(importtime_log: str) -> list[str]:
    """The TensorFlow, TFX and Beam modules in an `-X importtime` log."""
    names = [line.rsplit("|", 1)[-1].strip() for line in importtime_log.splitlines() if line.startswith("import time:")]
    return sorted(name for name in names if name.split(".")[0] in HEAVY)


def run_importtime(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=100)


@pytest.fixture(scope="module")
def output_root(tmp_path_factory):
    """An output root whose metadata store exists but holds no run yet."""
    root = tmp_path_factory.mktemp("out")
    metadata.open_store(str(root / "metadata.db"), metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return root


@pytest.mark.parametrize("command, says", [
    (["--help"], "usage: taxi-pipeline"),
    (["runs"], "No runs recorded yet."),
    (["lineage", "1796230867"], "taxi-pipeline lineage: "),
    (["rollback", "--help"], "usage: taxi-pipeline rollback"),
    (["release", "--help"], "usage: taxi-pipeline release"),
    (["monitor", "--help"], "usage: taxi-pipeline monitor"),
    (["schema-diff", "--help"], "usage: taxi-pipeline schema-diff"),
    (["runs", "--no_such_option"], "unrecognized arguments: --no_such_option"),
    (["runs", "--set", "no_such_setting=1"], "taxi-pipeline: "),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_command_answers_without_tensorflow_tfx_or_beam(output_root, command, says):
    done = run_importtime("-m", "pipeline.cli.main", *command, "--set", f"output_root={output_root}")
    assert says in done.stdout + done.stderr, done.stderr[-2000:]
    assert imported_heavy(done.stderr) == []
