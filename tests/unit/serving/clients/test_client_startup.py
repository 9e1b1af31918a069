"""The client command over REST starts without TensorFlow: it sends JSON over HTTP.

The command runs as a user runs it, under `python -X importtime`, against a port nobody
listens on: by the time it reports the refused connection it has read the schema and the
CSV and encoded the rows as tf.Examples, and Python has listed every module it imported.
"""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHIPPED_SPANS

pytestmark = pytest.mark.timeout(120)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_rest_client_command_imports_no_tensorflow():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "serving.clients", str(SHIPPED_SPANS / "span-4" / "data.csv"),
         "--rest", f"http://127.0.0.1:{_closed_port()}", "--limit", "3"],
        capture_output=True, text=True, cwd=REPO, timeout=100)
    assert done.returncode == 1 and "client: request failed" in done.stderr, done.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "serving.clients.example_proto" in imported  # tf.Examples built without TensorFlow
    assert [name for name in imported if name.split(".")[0] in ("tensorflow", "tfx", "apache_beam")] == []
    # Nothing but the failed request was printed: no CUDA, oneDNN or Python-version notices.
    assert [line for line in done.stderr.splitlines() if not line.startswith("import time:")] == [
        line for line in done.stderr.splitlines() if line.startswith("client: request failed")]
