"""Server-side batching: concurrent predict calls on the same signature run as one batch.

Configured like tensorflow_model_server's --batching_parameters_file (text
BatchingParameters): max_batch_size, batch_timeout_micros, num_batch_threads. A call waits
at most batch_timeout_micros for others to join; inputs are joined along the first
dimension, run once, and each caller gets its own rows of every output back.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import re
import threading

import numpy as np

from serving import signature_calls


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


class _Queue:
    def __init__(self):
        self.items: list[tuple[dict[str, np.ndarray], concurrent.futures.Future]] = []
        self.rows = 0
        self.full = threading.Event()


class Batcher:
    """Joins concurrent `run(function, inputs)` calls for the same function into batches."""

    def __init__(self, parameters: BatchingParameters):
        self.parameters = parameters
        self._lock = threading.Lock()
        self._queues: dict[int, _Queue] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(parameters.num_batch_threads, "batch")

    def run(self, function, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = {len(value) if np.ndim(value) else -1 for value in inputs.values()}
        if len(rows) != 1 or -1 in rows or next(iter(rows)) >= self.parameters.max_batch_size:
            return signature_calls.run(function, inputs)  # scalars, ragged or already big: alone
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            queue = self._queues.get(id(function))
            leader = queue is None
            if leader:
                queue = self._queues[id(function)] = _Queue()
            queue.items.append((inputs, future))
            queue.rows += next(iter(rows))
            if queue.rows >= self.parameters.max_batch_size:
                queue.full.set()
        if leader:
            # The first caller waits for company, then runs the batch for everyone.
            queue.full.wait(self.parameters.batch_timeout_micros / 1e6)
            with self._lock:
                del self._queues[id(function)]
            self._pool.submit(self._run_batch, function, queue.items).result()
        return future.result()

    @staticmethod
    def _run_batch(function, items) -> None:
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
