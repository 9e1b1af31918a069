"""Shadow mode: a model's predict requests also run on a shadow version, off the request path.

The routing file names a model's shadow (a version label, or a version number as a string;
serving/server/routing.py). Every predict request of that model that another version
answered is handed, once its answer is ready, to a bounded queue; worker threads run it on
the shadow version, count the outcome (`model_server_shadow_requests_total{status}`: ok,
error, dropped when the queue is full) and its probabilities, and log its answer beside the
serving one (role "shadow", the same request ids) when the serving record was logged. The
caller never waits for a shadow call, and nothing a shadow version does (fail, hang, fall
behind) reaches the caller's status, body or latency. Classify and regress are not shadowed.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import NamedTuple

import numpy as np

from serving import request_ids as log_fields
from serving.server import signature_calls
from serving.server.errors import ServingError
from serving.server.metrics import SHADOW_DROPPED, SHADOW_ERROR, SHADOW_OK, ServerMetrics
from serving.server.model_store import ModelStore
from serving.server.request_log import RequestLog

log = logging.getLogger("serving.shadow")

DEFAULT_QUEUE_SIZE = 100
DEFAULT_WORKERS = 1  # shadow calls take CPU from serving ones: one at a time unless told otherwise
WARN_SECONDS = 60.0  # a failing shadow version is logged at most this often per model
_STOP = object()


class _Call(NamedTuple):
    model: str
    version: int
    label: str | None  # the shadow as a label, None when it is a version number
    function: object
    signature: str
    inputs: dict[str, np.ndarray]
    request_ids: list[str] | None
    arm: str
    logged: bool  # the serving record was logged: log this one too
    timestamp: float


def _shadow_spec(shadow: str) -> tuple[int | None, str | None]:
    """A routing file's `shadow`: digits are a version number, anything else a label."""
    return (int(shadow), None) if shadow.isascii() and shadow.isdigit() else (None, shadow)


class ShadowRunner:
    def __init__(self, metrics: ServerMetrics | None = None, request_log: RequestLog | None = None,
                 queue_size: int = DEFAULT_QUEUE_SIZE, workers: int = DEFAULT_WORKERS):
        if queue_size < 1 or workers < 1:
            raise ValueError(f"shadow queue size and workers must be at least 1, not {queue_size} and {workers}")
        self.metrics, self.request_log = metrics or ServerMetrics(), request_log
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._warned: dict[str, float] = {}
        self._workers = workers
        self._threads: list[threading.Thread] = []  # started with the first shadow call
        self._start_lock = threading.Lock()

    def _start_workers(self) -> None:
        with self._start_lock:
            if not self._threads:
                self._threads = [threading.Thread(target=self._work_forever, name=f"shadow-{number}", daemon=True)
                                 for number in range(self._workers)]
                for thread in self._threads:
                    thread.start()

    def submit(self, store: ModelStore, shadow: str, served_version: int, signature: str,
               inputs: dict[str, np.ndarray], *, request_ids: list[str] | None, arm: str, logged: bool,
               timestamp: float) -> None:
        """Queue the shadow call of a served predict request. Never raises, never waits."""
        try:
            version, label = _shadow_spec(shadow)
            try:
                version, model, _ = store.resolve_with_signature_defs(version, label)
            except ServingError as error:  # the shadow names no loaded version
                self._failed(store.name, "", f"shadow {shadow!r}: {error.message}")
                return
            if version == served_version:
                return  # the shadow answered the request itself
            if not self._threads:
                self._start_workers()
            function = model.signatures.get(signature)
            if function is None:
                self._failed(store.name, str(version), f"version {version} has no signature {signature!r}")
                return
            self._queue.put_nowait(_Call(store.name, version, label, function, signature, inputs, request_ids, arm,
                                         logged, timestamp))
        except queue.Full:
            self.metrics.shadow_call(store.name, str(version), SHADOW_DROPPED)
        except Exception as error:  # a bug here must cost the shadow call, never the caller's answer
            self._failed(store.name, "", f"{type(error).__name__}: {error}")

    def _work_forever(self) -> None:
        while True:
            call = self._queue.get()
            if call is _STOP:
                return
            try:
                self._run(call)
            except Exception as error:  # a worker that died would leave every later call queued for ever
                self._failed(call.model, str(call.version), f"{type(error).__name__}: {error}")

    def _run(self, call: _Call) -> None:
        started = time.perf_counter()
        try:
            outputs = signature_calls.run(call.function, call.inputs)
        except ServingError as error:
            self._failed(call.model, str(call.version), error.message)
            return
        except Exception as error:  # whatever the model raises is its own failure
            self._failed(call.model, str(call.version), f"{type(error).__name__}: {error}")
            return
        seconds = time.perf_counter() - started
        self.metrics.shadow_call(call.model, str(call.version), SHADOW_OK, outputs)
        if call.logged and self.request_log is not None:
            self.request_log.record(call.model, call.version, call.signature, call.inputs, outputs,
                                    request_ids=call.request_ids, version_label=call.label, arm=call.arm,
                                    role=log_fields.SHADOW, latency_seconds=seconds, sampled=True,
                                    timestamp=call.timestamp)

    def _failed(self, model: str, version: str, reason: str) -> None:
        self.metrics.shadow_call(model, version, SHADOW_ERROR)
        now = time.monotonic()
        if now - self._warned.get(model, -WARN_SECONDS) >= WARN_SECONDS:
            self._warned[model] = now
            log.warning("shadow call of model %s version %s failed (callers are not affected; further failures "
                        "are counted in model_server_shadow_requests_total and logged once a minute): %s",
                        model, version or "?", reason[:500])

    def pending(self) -> int:
        """Shadow calls queued and not yet taken by a worker."""
        return self._queue.qsize()

    def stop(self, timeout: float = 5.0) -> None:
        """Let the workers finish the calls queued (at most `timeout` seconds), then stop them."""
        deadline = time.monotonic() + timeout
        with self._start_lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            try:
                self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                break
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
