"""The versions of one model: found under its base path, loaded, and chosen per request.

Mirrors tensorflow_model_server's file-system source: every numeric child folder of the
base path is a version (hidden names, such as a push's `.<version>.staging`, are not); the
version policy (latest N, all, specific) says which are loaded, labels name versions, and a
request without a version gets the newest loaded one. A version counts only once its
saved_model.pb exists. TFX's Pusher copies that file last but in place, so a poll can still
find it half-written; the pipeline's Pusher copies under a hidden name and renames, so its
versions are complete when they appear. A new version is loaded before it replaces the old
one. A version that fails to load is reported in the status while the old one keeps serving,
and is tried again (TF Serving retries at a fixed interval): after 1 s, doubling up to 60 s,
and at the next poll once its files change (the rest of a copy arrived, a file was fixed).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable

import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from serving.server.errors import invalid, not_found
from serving.server.warmup import replay_warmup_requests

log = logging.getLogger(__name__)

# ModelVersionStatus.State values (apis/get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
# Waits before loading a failed version again: the first, doubled after each failure up to the last.
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 1.0, 60.0


@dataclasses.dataclass
class VersionState:
    version: int
    state: str
    error: str = ""  # empty when the version is healthy
    model: Any = None
    signature_defs: Any = None  # the MetaGraph's SignatureDef map, for metadata requests


def list_versions(base_path: str) -> list[int]:
    """Numeric child folders that hold a complete SavedModel, lowest first."""
    if not tf.io.gfile.isdir(base_path):
        return []
    versions = []
    for child in tf.io.gfile.listdir(base_path):
        name = child.rstrip("/")
        # Only ASCII digits: a staging folder (".17.staging") or "１７" is no version.
        if name.isascii() and name.isdigit() and tf.io.gfile.exists(os.path.join(base_path, name, "saved_model.pb")):
            versions.append(int(name))
    return sorted(versions)


def folder_fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file under `path`: changes when a copy goes on or a file is fixed."""
    entries = []
    for folder, _, files in tf.io.gfile.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            try:
                stat = tf.io.gfile.stat(full)
            except tf.errors.OpError:  # removed while we walked: the next poll sees the change
                continue
            entries.append((os.path.relpath(full, path), stat.length, stat.mtime_nsec))
    return tuple(sorted(entries))


def retry_delay(failures: int, first: float = RETRY_FIRST_SECONDS, most: float = RETRY_MAX_SECONDS) -> float:
    """Seconds to wait after the `failures`-th failed load in a row."""
    return min(first * 2 ** (failures - 1), most)


@dataclasses.dataclass
class _Retry:
    failures: int  # failed loads in a row since the version's files last changed
    due: float  # clock time of the next attempt
    fingerprint: tuple  # the files as the last attempt found them


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's model_version_policy: the `latest` N (default 1), `all`, or `specific` versions."""
    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, found: list[int]) -> list[int]:
        if self.kind == "all":
            return found
        if self.kind == "specific":
            return [version for version in found if version in self.versions]
        return found[-self.count:]


class ModelStore:
    def __init__(self, name: str, base_path: str, poll_seconds: float = 1.0,
                 on_event: Callable[[str, int, str], None] | None = None,
                 policy: VersionPolicy | None = None, labels: dict[str, int] | None = None):
        """`on_event(model, version, event)` hears of each load, failed load and unload."""
        self.name, self.base_path, self.poll_seconds = name, base_path, poll_seconds
        self.policy, self.labels = policy or VersionPolicy(), dict(labels or {})
        self._on_event = on_event or (lambda *_: None)
        self._states: dict[int, VersionState] = {}
        self._retries: dict[int, _Retry] = {}  # versions whose last load failed
        self._now = time.monotonic  # the clock retries are timed by
        # Re-entrant: load-event callbacks may read the status while the poller holds the lock.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Load what is there now, then keep polling in the background."""
        self.poll_once()
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll_forever, name=f"poll-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _poll_forever(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # a bad poll must not kill the poller; the next one retries
                log.exception("polling %s failed", self.base_path)

    def configure(self, base_path: str, policy: VersionPolicy, labels: dict[str, int]) -> None:
        """Apply a reloaded model config; the next poll loads and unloads to match it."""
        with self._lock:
            self.base_path, self.policy, self.labels = base_path, policy, dict(labels)

    def poll_once(self) -> None:
        with self._lock:
            wanted = self.policy.choose(list_versions(self.base_path))
            seen = {version: self._states.get(version) for version in wanted}
            failed = [version for version, state in seen.items()
                      if state is not None and state.error and version in self._retries]
        # Outside the lock: requests need it, and a folder walk on a remote file system is slow.
        changed = {version: folder_fingerprint(self._path(version)) for version in failed}
        with self._lock:
            due = []
            for version, state in seen.items():
                retry = self._retries.get(version)
                if version in changed and retry and changed[version] != retry.fingerprint:
                    retry.failures, retry.due = 0, 0.0  # new files: try at once, and back off from the start
                if self._should_load_locked(state, retry):
                    due.append((version, state))
        # Newest first: it is the one `latest` requests go to.
        for version, state in sorted(due, key=lambda pair: pair[0], reverse=True):
            self._load(version, state)
        with self._lock:
            # Unload what the policy no longer wants, but only once something wanted serves
            # (TF Serving's availability-preserving policy).
            if not any(self._states[v].state == AVAILABLE for v in wanted if v in self._states):
                return
            for version, state in list(self._states.items()):
                if version not in wanted and state.state == AVAILABLE:
                    state.state, state.model = END, None
                    self._on_event(self.name, version, "unloaded")

    def _path(self, version: int) -> str:
        return os.path.join(self.base_path, str(version))

    def _should_load_locked(self, state: VersionState | None, retry: _Retry | None) -> bool:
        if state is None:
            return True
        if state.state != END:  # loading or serving
            return False
        if not state.error:  # unloaded, and wanted again (the newer version was withdrawn or unwanted)
            return True
        return retry is not None and self._now() >= retry.due

    def _load(self, version: int, seen: VersionState | None = None) -> None:
        """Load `version` unless another poll (a config reload) changed its state since it was `seen`."""
        path = self._path(version)
        with self._lock:
            if self._states.get(version) is not seen:
                return
            self._states[version] = VersionState(version, LOADING)
        # Taken before the attempt: files that change during it make the next poll try again.
        fingerprint = folder_fingerprint(path)
        try:
            model = tf.saved_model.load(path)
            signature_defs = loader_impl.parse_saved_model(path).meta_graphs[0].signature_def
            replayed = replay_warmup_requests(model, path)
            if replayed:
                log.info("model %s version %d: replayed %d warmup requests", self.name, version, replayed)
        except Exception as error:  # reported in the status; the old version keeps serving
            with self._lock:
                failures = (self._retries[version].failures if version in self._retries else 0) + 1
                delay = retry_delay(failures)
                self._retries[version] = _Retry(failures, self._now() + delay, fingerprint)
                # Without a poller nothing retries by itself (a config reload still does).
                retrying = (f"; attempt {failures}, next in {delay:g} s or as soon as its files change"
                            if self.poll_seconds > 0 else "")
                message = f"loading {path} failed: {error}{retrying}"
                self._states[version] = VersionState(version, END, message)
            log.error("%s", message)
            self._on_event(self.name, version, "load_failed")
            return
        with self._lock:
            self._retries.pop(version, None)
            self._states[version] = VersionState(version, AVAILABLE, model=model, signature_defs=signature_defs)
        log.info("model %s version %d is available", self.name, version)
        self._on_event(self.name, version, "loaded")

    def _serving_version_locked(self) -> int | None:
        available = [v for v, s in self._states.items() if s.state == AVAILABLE]
        return max(available) if available else None

    def resolve(self, version: int | None = None, label: str | None = None) -> tuple[int, Any]:
        """(version, loaded SavedModel) for a request; the newest available without a version."""
        with self._lock:
            if label:
                if label not in self.labels:
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = self.labels[label]
            if version is None:
                chosen = self._serving_version_locked()
                if chosen is None:
                    raise not_found(f"Servable not found for request: Latest({self.name})")
            else:
                state = self._states.get(version)
                if state is None or state.state != AVAILABLE:
                    raise not_found(f"Servable not found for request: Specific({self.name}, {version})")
                chosen = version
            return chosen, self._states[chosen].model

    def resolve_with_signature_defs(self, version: int | None = None,
                                    label: str | None = None) -> tuple[int, Any, Any]:
        """(version, loaded SavedModel, its SignatureDef map), all of one version."""
        with self._lock:
            chosen, model = self.resolve(version, label)
            return chosen, model, self._states[chosen].signature_defs

    def signature_defs(self, version: int | None = None, label: str | None = None):
        """(version, SignatureDef map) of the version a metadata request names."""
        chosen, _ = self.resolve(version, label)
        with self._lock:
            return chosen, self._states[chosen].signature_defs

    def statuses_or_empty(self) -> list[VersionState]:
        """Every version this store knows, oldest first, without the loaded models."""
        with self._lock:
            return [dataclasses.replace(s, model=None) for _, s in sorted(self._states.items())]

    def statuses(self, version: int | None = None) -> list[VersionState]:
        """Like TF Serving's model status: NOT_FOUND for an unknown model or version."""
        with self._lock:
            if version is None:
                if not self._states:
                    raise not_found(f"Could not find any versions of model {self.name}")
                return self.statuses_or_empty()
            if version not in self._states:
                raise not_found(f"Could not find version {version} of model {self.name}")
            return [dataclasses.replace(self._states[version], model=None)]
