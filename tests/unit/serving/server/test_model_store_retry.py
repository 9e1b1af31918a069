"""ModelStore with a stand-in loader and clock: when a failed version is tried again, and what the status says."""
from __future__ import annotations

import shutil
import types

import pytest

from serving.server import model_store
from serving.server.model_store import AVAILABLE, END, ModelStore, list_versions, retry_delay


class Loader:
    """Stands in for tf.saved_model.load: fails while `failing` is set, counts attempts per path."""

    def __init__(self):
        self.failing: set[str] = set()
        self.attempts: list[str] = []

    def load(self, path):
        self.attempts.append(path)
        if path in self.failing:
            raise ValueError("Error parsing message")
        return object()


@pytest.fixture
def loader(monkeypatch):
    made = Loader()
    monkeypatch.setattr(model_store.tf.saved_model, "load", made.load)
    monkeypatch.setattr(model_store.loader_impl, "parse_saved_model",
                        lambda path: types.SimpleNamespace(meta_graphs=[types.SimpleNamespace(signature_def={})]))
    monkeypatch.setattr(model_store, "replay_warmup_requests", lambda model, path: 0)
    return made


def _version(base, number, content=b"graph"):
    (base / str(number)).mkdir(parents=True, exist_ok=True)
    (base / str(number) / "saved_model.pb").write_bytes(content)
    return str(base / str(number))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _store(base, poll_seconds=1.0):
    events = []
    store = ModelStore("m", str(base), poll_seconds=poll_seconds, on_event=lambda _, v, e: events.append((v, e)))
    store._now = Clock()
    return store, events


def test_backoff_doubles_from_one_second_to_a_minute():
    assert [retry_delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_failed_load_is_retried_with_backoff_and_reported_until_it_loads(tmp_path, loader):
    path = _version(tmp_path, 5)
    loader.failing.add(path)
    store, events = _store(tmp_path)
    clock = store._now
    store.poll_once()
    [status] = store.statuses()
    assert status.state == END
    assert status.error == f"loading {path} failed: Error parsing message; attempt 1, next in 1 s or as soon as " \
                           "its files change"
    for now, attempts in ((0.5, 1), (1.0, 2), (2.9, 2), (3.0, 3), (6.9, 3), (7.0, 4)):
        clock.now = now
        store.poll_once()
        assert len(loader.attempts) == attempts, now
    assert "attempt 4, next in 8 s" in store.statuses()[0].error
    loader.failing.clear()  # whatever was wrong went away without touching the files
    clock.now = 15.0
    store.poll_once()
    assert store.statuses()[0].state == AVAILABLE and store.statuses()[0].error == ""
    assert events == [(5, "load_failed")] * 4 + [(5, "loaded")]
    store.poll_once()
    assert len(loader.attempts) == 5, "a loaded version is not loaded again"


def test_a_change_to_the_files_retries_at_the_next_poll_and_restarts_the_backoff(tmp_path, loader):
    path = _version(tmp_path, 5)
    loader.failing.add(path)
    store, _ = _store(tmp_path)
    for now in (0.0, 1.0, 3.0):
        store._now.now = now
        store.poll_once()
    assert "attempt 3, next in 4 s" in store.statuses()[0].error
    _version(tmp_path, 5, b"the rest of the copy arrived")
    store.poll_once()  # same instant: no waiting for the backoff
    assert len(loader.attempts) == 4
    assert "attempt 1, next in 1 s" in store.statuses()[0].error


def test_without_a_poller_the_status_promises_no_retry(tmp_path, loader):
    loader.failing.add(_version(tmp_path, 5))
    store, _ = _store(tmp_path, poll_seconds=0)
    store.poll_once()
    assert store.statuses()[0].error.endswith("failed: Error parsing message")


def test_the_old_version_serves_while_the_new_one_fails_and_is_unloaded_once_it_loads(tmp_path, loader):
    _version(tmp_path, 1)
    store, _ = _store(tmp_path)
    store.poll_once()
    loader.failing.add(_version(tmp_path, 2))
    store.poll_once()
    assert store.resolve()[0] == 1
    loader.failing.clear()
    store._now.now = 1.0
    store.poll_once()
    assert store.resolve()[0] == 2 and [s.state for s in store.statuses()] == [END, AVAILABLE]


def test_an_unloaded_version_serves_again_when_the_newer_one_is_withdrawn(tmp_path, loader):
    _version(tmp_path, 1)
    store, events = _store(tmp_path)
    store.poll_once()
    _version(tmp_path, 2)
    store.poll_once()
    assert [s.state for s in store.statuses()] == [END, AVAILABLE]
    shutil.rmtree(tmp_path / "2")  # an unrecorded push taken back out
    store.poll_once()
    assert store.resolve()[0] == 1
    assert [s.state for s in store.statuses()] == [AVAILABLE, END]
    assert events[-2:] == [(1, "loaded"), (2, "unloaded")]


def test_hidden_staging_folders_are_not_versions(tmp_path):
    _version(tmp_path, 3)
    (tmp_path / ".4.staging").mkdir()
    (tmp_path / ".4.staging" / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "4x").mkdir()
    assert list_versions(str(tmp_path)) == [3]
