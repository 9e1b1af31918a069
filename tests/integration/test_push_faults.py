"""Pushes as a polling model server sees them: a copy caught half-way, a load that fails and then works.

The server polls every 50 ms. TFX's Pusher copies into the version folder itself, saved_model.pb
last but in place: a poll can find that file half-written. The pipeline's Pusher
(pipeline/evaluation/atomic_pusher.py) copies under a hidden name and renames, so the version
appears whole; a load that fails anyway is tried again without a restart.
"""
from __future__ import annotations

import os
import shutil
import threading
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc
from tfx.dsl.io import fileio

from models import features as F
from pipeline.evaluation import atomic_pusher
from serving.clients.request_encoding import read_csv_rows, serialized_examples
from serving.server.model_server import ModelServer
from serving.server.model_store import ModelStore

pytestmark = pytest.mark.slow
NAME = "taxi-tips"
POLL_SECONDS = 0.05


class Watched:
    """A server on `base` with version 1, and what clients see of it: statuses, answering versions, load events."""

    def __init__(self, base, model_dir, rows):
        shutil.copytree(model_dir, base / "1")
        self.base, self.events = base, []
        store = ModelStore(NAME, str(base), poll_seconds=POLL_SECONDS,
                           on_event=lambda _, version, event: self.events.append((version, event)))
        self.server = ModelServer({NAME: store}).start()
        self.examples = serialized_examples(rows, F.feature_types())

    def statuses(self) -> dict[int, tuple[str, str]]:
        reply = requests.get(f"http://127.0.0.1:{self.server.rest_port}/v1/models/{NAME}", timeout=10).json()
        return {int(s["version"]): (s["state"], s["status"]["error_message"]) for s in reply["model_version_status"]}

    def answering_version(self) -> int:
        """Predict as a client does (no version asked for); the version that answered."""
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME))
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(self.examples))
        with grpc.insecure_channel(f"127.0.0.1:{self.server.grpc_port}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert len(response.outputs["tip_probability"].float_val) == len(self.examples)
        return response.model_spec.version.value

    def wait_for(self, condition, seconds=60.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = condition(self.statuses())
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"not reached in {seconds} s; statuses {self.statuses()}")


@pytest.fixture
def watched(tmp_path, exported_model_dir, small_csv):
    made = Watched(tmp_path / NAME, exported_model_dir, list(read_csv_rows(str(small_csv)))[:3])
    yield made
    made.server.stop()


def _files(model_dir) -> list[str]:
    return sorted(os.path.relpath(os.path.join(folder, name), model_dir)
                  for folder, _, names in os.walk(model_dir) for name in names)


def test_the_old_in_place_copy_is_loaded_half_written_and_only_the_retry_recovers(watched, exported_model_dir):
    """TFX's order, saved_model.pb last, held half-written until the server has polled it: deterministic."""
    target = watched.base / "2"
    for name in _files(exported_model_dir):
        if name != "saved_model.pb":
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(exported_model_dir / name, target / name)
    graph = (exported_model_dir / "saved_model.pb").read_bytes()
    with open(target / "saved_model.pb", "wb") as out:
        out.write(graph[:len(graph) // 2])  # inside the one MetaGraphDef field: the proto cannot parse
        out.flush()
        state, error = watched.wait_for(lambda s: s.get(2) if s.get(2, ("", ""))[1] else None)
        assert state == "END" and f"loading {target} failed" in error and "next in 1 s" in error
        assert watched.answering_version() == 1, "the old version keeps serving"
        out.write(graph[len(graph) // 2:])
    # The finished copy changes the folder: the next poll loads it, no restart needed.
    watched.wait_for(lambda s: s.get(2, ("",))[0] == "AVAILABLE")
    assert watched.statuses()[2] == ("AVAILABLE", "")
    assert watched.answering_version() == 2


def test_a_staged_and_renamed_push_is_never_seen_half_and_serves_once_whole(watched, exported_model_dir,
                                                                          monkeypatch):
    """The pipeline's push, copying slowly (each file in pieces, with pauses) while clients watch."""
    real_rename = os.rename
    renaming = threading.Event()

    def slow_copy(source, destination, overwrite=False):
        data = open(source, "rb").read()
        with open(destination, "wb") as out:
            for start in range(0, max(len(data), 1), max(len(data) // 4, 1)):
                out.write(data[start:start + max(len(data) // 4, 1)])
                out.flush()
                time.sleep(0.05)

    def watched_rename(source, destination):
        renaming.set()  # before: what clients see while this is unset precedes the rename
        real_rename(source, destination)

    monkeypatch.setattr(fileio, "copy", slow_copy)
    monkeypatch.setattr(atomic_pusher.os, "rename", watched_rename)
    pushed = {}
    pusher = threading.Thread(target=lambda: pushed.update(
        zip(("version", "path"), atomic_pusher.push(str(exported_model_dir), str(watched.base)))))
    pusher.start()
    seen, answered, staging_seen = [], set(), 0
    while pusher.is_alive():
        before_rename = not renaming.is_set()
        staged = any(name.endswith(".staging") for name in os.listdir(watched.base))
        seen.append((before_rename, watched.statuses()))
        answered.add(watched.answering_version())
        staging_seen += staged and before_rename
    pusher.join()
    assert staging_seen > 5, "clients watched while the staging folder was filling"
    version = pushed["version"]
    watched.wait_for(lambda s: s.get(version, ("",))[0] == "AVAILABLE")
    for before_rename, statuses in seen:
        assert all(error == "" for _, error in statuses.values()), statuses
        if before_rename:
            assert set(statuses) == {1}, "nothing but version 1 before the rename"
    assert answered <= {1, version}
    assert [event for event in watched.events if event[1] == "load_failed"] == []
    assert watched.answering_version() == version
    assert sorted(os.listdir(watched.base)) == sorted(["1", str(version)]), "no staging folder left"


def test_a_version_that_fails_to_load_is_retried_and_serves_without_a_restart(watched, exported_model_dir):
    """saved_model.pb corrupt at first, then fixed with the same size and time: only the timed retry can see it."""
    target = watched.base / "7"
    staging = watched.base / ".7.staging"
    shutil.copytree(exported_model_dir, staging)
    graph = (staging / "saved_model.pb").read_bytes()
    stat = os.stat(staging / "saved_model.pb")
    (staging / "saved_model.pb").write_bytes(b"\0" * len(graph))
    os.utime(staging / "saved_model.pb", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.rename(staging, target)
    state, error = watched.wait_for(lambda s: s.get(7) if s.get(7, ("", ""))[1] else None)
    assert state == "END" and f"loading {target} failed" in error and "attempt 1, next in 1 s" in error
    assert watched.answering_version() == 1
    (target / "saved_model.pb").write_bytes(graph)
    os.utime(target / "saved_model.pb", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    watched.wait_for(lambda s: s.get(7, ("",))[0] == "AVAILABLE", seconds=120)
    assert watched.statuses()[7] == ("AVAILABLE", "") and watched.statuses()[1][0] == "END"
    assert watched.answering_version() == 7
    failed = [event for event in watched.events if event == (7, "load_failed")]
    assert 1 <= len(failed) and watched.events[-2:] == [(7, "loaded"), (1, "unloaded")]
