"""Server-side batching: concurrent predict calls on the same signature run as one batch.

Configured like tensorflow_model_server's --batching_parameters_file (text
BatchingParameters): max_batch_size, batch_timeout_micros, num_batch_threads,
max_enqueued_batches. A call waits batch_timeout_micros for others to join (longer only
while every batch thread is busy, as in TF Serving's batch queue); inputs are joined along
the first dimension, run once, and each caller gets its own rows of every output back.
A call that would need a new batch while max_enqueued_batches of its signature are
already waiting is refused at once with UNAVAILABLE, as TF Serving's batch queue does.
A call whose caller gave up (gRPC deadline, cancelled task) before its batch runs is left
out of the batch.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import re
import threading
import time

import grpc
import numpy as np

from serving.server import signature_calls
from serving.server.errors import ServingError

log = logging.getLogger(__name__)
# TF Serving's words (shared_batch_scheduler.h) for a call refused by a full batch queue.
QUEUE_FULL = "The batch scheduling queue to which this task was submitted is full"


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2
    # TF Serving's default (SharedBatchScheduler::QueueOptions); per signature, the open batch included.
    max_enqueued_batches: int = 10


def read_batching_parameters(path: str) -> BatchingParameters:
    text = re.sub(r"#.*", "", open(path).read())
    values = {}
    for field in dataclasses.fields(BatchingParameters):
        match = re.search(rf"\b{field.name}\s*\{{\s*value\s*:\s*(\d+)\s*\}}", text)
        if match:
            values[field.name] = int(match.group(1))
    if not values and text.strip():
        raise ValueError(f"{path}: no batching parameter found (expected e.g. max_batch_size {{ value: 32 }})")
    parameters = BatchingParameters(**values)
    if min(parameters.max_batch_size, parameters.num_batch_threads, parameters.max_enqueued_batches) < 1:
        raise ValueError(f"{path}: max_batch_size, num_batch_threads and max_enqueued_batches must be at least 1")
    return parameters


class _Batch:
    """Requests for one function that run as one call, and when it must run at the latest."""

    def __init__(self, function, deadline: float):
        self.function, self.deadline = function, deadline
        self.items: list[tuple[dict[str, np.ndarray], concurrent.futures.Future]] = []
        self.rows = 0


def _settle(future: concurrent.futures.Future, result=None, error: BaseException | None = None) -> None:
    """Answer a caller, unless it is already answered or gave up: that must not stop the worker."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:  # cancelled between the check and the set
        pass


class Batcher:
    """Joins concurrent calls for the same function into batches.

    `submit` only queues a call and returns a future, so the server's event loop awaits it
    without a thread per waiting request (with one, batches could not outgrow a thread
    pool). `num_batch_threads` workers
    each take the next batch that is full or whose first request has waited
    batch_timeout_micros. While every worker is busy the open batch keeps filling, so
    batches grow with the load instead of queueing up half empty.
    """

    def __init__(self, parameters: BatchingParameters):
        self.parameters = parameters
        self._changed = threading.Condition()
        self._open: dict[int, _Batch] = {}  # by id(function): the batch new calls join
        self._closed: collections.deque[_Batch] = collections.deque()  # full, or must run alone
        self._closed_count: collections.Counter[int] = collections.Counter()  # closed batches by id(function)
        for number in range(parameters.num_batch_threads):
            threading.Thread(target=self._work_forever, name=f"batch-{number}", daemon=True).start()

    def submit(self, function, inputs: dict[str, np.ndarray]) -> concurrent.futures.Future:
        """Queue one call; ServingError UNAVAILABLE when its signature's queue is full."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        rows = self._rows(inputs)
        key = id(function)
        with self._changed:
            batch = self._open.get(key)
            fits = rows is not None and batch is not None and batch.rows + rows <= self.parameters.max_batch_size
            if not fits and self._enqueued(key) >= self.parameters.max_enqueued_batches:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, QUEUE_FULL)
            if rows is None:  # scalars, ragged or already big: alone
                alone = _Batch(function, 0.0)
                alone.items.append((inputs, future))
                self._close(alone)
                return future
            if batch is not None and not fits:
                self._close(self._open.pop(key))
                batch = None
            if batch is None:
                deadline = time.monotonic() + self.parameters.batch_timeout_micros / 1e6
                batch = self._open[key] = _Batch(function, deadline)
                self._changed.notify()  # a worker may be waiting for a later deadline
            batch.items.append((inputs, future))
            batch.rows += rows
            if batch.rows >= self.parameters.max_batch_size:
                self._close(self._open.pop(key))
        return future

    def _enqueued(self, key: int) -> int:
        """Batches of one function waiting for a worker, the open one included (as TF Serving counts)."""
        return self._closed_count[key] + (key in self._open)

    def _close(self, batch: _Batch) -> None:
        self._closed.append(batch)
        self._closed_count[id(batch.function)] += 1
        self._changed.notify()

    def _rows(self, inputs: dict[str, np.ndarray]) -> int | None:
        """Rows of a call that can join a batch; None when it must run alone."""
        rows = {len(value) if np.ndim(value) else -1 for value in inputs.values()}
        if len(rows) != 1 or -1 in rows or next(iter(rows)) >= self.parameters.max_batch_size:
            return None
        return next(iter(rows))

    def _next_batch(self) -> _Batch:
        with self._changed:
            while True:
                if self._closed:
                    batch = self._closed.popleft()
                    key = id(batch.function)
                    self._closed_count[key] -= 1
                    if not self._closed_count[key]:
                        del self._closed_count[key]
                    return batch
                now = time.monotonic()
                due = [key for key, batch in self._open.items() if batch.deadline <= now]
                if due:
                    return self._open.pop(due[0])
                wait = min((batch.deadline for batch in self._open.values()), default=now + 60) - now
                self._changed.wait(wait)

    def _work_forever(self) -> None:
        while True:
            try:
                batch = self._next_batch()
            except Exception:  # never expected; a dead worker would wedge the server
                log.exception("batch worker: taking the next batch failed")
                time.sleep(0.1)
                continue
            # Callers that gave up are left out; the others can no longer be cancelled.
            items = [(inputs, future) for inputs, future in batch.items if future.set_running_or_notify_cancel()]
            try:
                if items:
                    self._run_batch(batch.function, items)
            except BaseException as error:  # a bug here must fail this batch, not stop the worker
                log.exception("batch worker: a batch of %d calls failed", len(items))
                failure = ServingError(grpc.StatusCode.INTERNAL, f"batch failed: {type(error).__name__}: {error}")
                for _, future in items:
                    _settle(future, error=failure)

    @staticmethod
    def _run_batch(function, items) -> None:
        if len(items) == 1:
            inputs, future = items[0]
            try:
                outputs = signature_calls.run(function, inputs)
            except Exception as error:  # handed to the caller
                _settle(future, error=error)
                return
            _settle(future, outputs)
            return
        try:
            joined = {name: np.concatenate([inputs[name] for inputs, _ in items]) for name in items[0][0]}
            outputs = signature_calls.run(function, joined)
        except Exception:
            # One bad request must not fail its neighbours: run each alone for its own answer.
            for inputs, future in items:
                try:
                    _settle(future, signature_calls.run(function, inputs))
                except Exception as error:  # handed to that caller
                    _settle(future, error=error)
            return
        start = 0
        for inputs, future in items:
            count = len(next(iter(inputs.values())))
            _settle(future, {name: value[start:start + count] for name, value in outputs.items()})
            start += count
