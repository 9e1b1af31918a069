"""The versions of one model: found under its base path, loaded, and chosen per request.

Mirrors tensorflow_model_server's file-system source: every numeric child folder of the
base path is a version; the version policy (latest N, all, specific) says which are loaded,
labels name versions, and a request without a version gets the newest loaded one. A version counts only
once its saved_model.pb exists, the file TFX's Pusher copies last, so a half-written
push is never loaded. A new version is loaded before it replaces the old one, and a
version that fails to load is reported in the status while the old one keeps serving.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Any, Callable

import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from serving.server.errors import invalid, not_found
from serving.server.warmup import replay_warmup_requests

log = logging.getLogger(__name__)

# ModelVersionStatus.State values (apis/get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


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
        if name.isdigit() and tf.io.gfile.exists(os.path.join(base_path, name, "saved_model.pb")):
            versions.append(int(name))
    return sorted(versions)


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
            new = [version for version in wanted if version not in self._states]
        # Newest first: it is the one `latest` requests go to.
        for version in sorted(new, reverse=True):
            self._load(version)
        with self._lock:
            # Unload what the policy no longer wants, but only once something wanted serves
            # (TF Serving's availability-preserving policy).
            if not any(self._states[v].state == AVAILABLE for v in wanted if v in self._states):
                return
            for version, state in list(self._states.items()):
                if version not in wanted and state.state == AVAILABLE:
                    state.state, state.model = END, None
                    self._on_event(self.name, version, "unloaded")

    def _load(self, version: int) -> None:
        path = os.path.join(self.base_path, str(version))
        with self._lock:
            if version in self._states:  # another poll (a config reload) got to it first
                return
            self._states[version] = VersionState(version, LOADING)
        try:
            model = tf.saved_model.load(path)
            signature_defs = loader_impl.parse_saved_model(path).meta_graphs[0].signature_def
            replayed = replay_warmup_requests(model, path)
            if replayed:
                log.info("model %s version %d: replayed %d warmup requests", self.name, version, replayed)
        except Exception as error:  # reported in the status; the old version keeps serving
            log.error("loading %s failed: %s", path, error)
            with self._lock:
                self._states[version] = VersionState(version, END, f"loading {path} failed: {error}")
            self._on_event(self.name, version, "load_failed")
            return
        with self._lock:
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
