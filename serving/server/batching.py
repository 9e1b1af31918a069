"""Server-side batching: concurrent predict calls on the same signature run as one batch.

Configured like tensorflow_model_server's --batching_parameters_file (text
BatchingParameters): max_batch_size, batch_timeout_micros, num_batch_threads. A call waits
batch_timeout_micros for others to join (longer only while every batch thread is busy, as
in TF Serving's batch queue); inputs are joined along the first dimension, run once, and
each caller gets its own rows of every output back.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import re
import threading
import time

import numpy as np

from serving.server import signature_calls


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2


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
    if parameters.max_batch_size < 1 or parameters.num_batch_threads < 1:
        raise ValueError(f"{path}: max_batch_size and num_batch_threads must be at least 1")
    return parameters


class _Batch:
    """Requests for one function that run as one call, and when it must run at the latest."""

    def __init__(self, function, deadline: float):
        self.function, self.deadline = function, deadline
        self.items: list[tuple[dict[str, np.ndarray], concurrent.futures.Future]] = []
        self.rows = 0


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
        for number in range(parameters.num_batch_threads):
            threading.Thread(target=self._work_forever, name=f"batch-{number}", daemon=True).start()

    def submit(self, function, inputs: dict[str, np.ndarray]) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        rows = self._rows(inputs)
        with self._changed:
            if rows is None:  # scalars, ragged or already big: alone
                alone = _Batch(function, 0.0)
                alone.items.append((inputs, future))
                self._closed.append(alone)
                self._changed.notify()
                return future
            batch = self._open.get(id(function))
            if batch is not None and batch.rows + rows > self.parameters.max_batch_size:
                self._closed.append(self._open.pop(id(function)))
                self._changed.notify()
                batch = None
            if batch is None:
                deadline = time.monotonic() + self.parameters.batch_timeout_micros / 1e6
                batch = self._open[id(function)] = _Batch(function, deadline)
                self._changed.notify()  # a worker may be waiting for a later deadline
            batch.items.append((inputs, future))
            batch.rows += rows
            if batch.rows >= self.parameters.max_batch_size:
                self._closed.append(self._open.pop(id(function)))
                self._changed.notify()
        return future

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
                    return self._closed.popleft()
                now = time.monotonic()
                due = [key for key, batch in self._open.items() if batch.deadline <= now]
                if due:
                    return self._open.pop(due[0])
                wait = min((batch.deadline for batch in self._open.values()), default=now + 60) - now
                self._changed.wait(wait)

    def _work_forever(self) -> None:
        while True:
            batch = self._next_batch()
            self._run_batch(batch.function, batch.items)

    @staticmethod
    def _run_batch(function, items) -> None:
        if len(items) == 1:
            inputs, future = items[0]
            try:
                future.set_result(signature_calls.run(function, inputs))
            except Exception as error:  # handed to the caller
                future.set_exception(error)
            return
        try:
            joined = {name: np.concatenate([inputs[name] for inputs, _ in items]) for name in items[0][0]}
            outputs = signature_calls.run(function, joined)
        except Exception:
            # One bad request must not fail its neighbours: run each alone for its own answer.
            for inputs, future in items:
                try:
                    future.set_result(signature_calls.run(function, inputs))
                except Exception as error:  # handed to that caller
                    future.set_exception(error)
            return
        start = 0
        for inputs, future in items:
            count = len(next(iter(inputs.values())))
            future.set_result({name: value[start:start + count] for name, value in outputs.items()})
            start += count
