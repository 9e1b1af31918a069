"""The batcher when callers give up, the model call fails unexpectedly, or the queue is full
(signature_calls.run stands in for the model)."""
from __future__ import annotations

import concurrent.futures
import time

import grpc
import numpy as np
import pytest

from serving.server import batching, signature_calls
from serving.server.batching import QUEUE_FULL, Batcher, BatchingParameters, read_batching_parameters
from serving.server.errors import ServingError


def _double(calls: list):
    def run(function, inputs):
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}
    return run


def _x(*values) -> dict:
    return {"x": np.array(values, dtype=np.float32)}


def test_callers_that_gave_up_are_left_out_and_the_workers_live_on(monkeypatch):
    calls = []
    monkeypatch.setattr(signature_calls, "run", _double(calls))
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    function = object()
    for _ in range(3):  # before the fix, the first such batch killed the only worker
        gone = batcher.submit(function, _x(1.0))
        assert gone.cancel()
        kept = batcher.submit(function, _x(2.0, 3.0))
        np.testing.assert_array_equal(kept.result(timeout=5)["y"], [4.0, 6.0])
    assert calls == [2, 2, 2], "the cancelled rows never reached the model"
    alone = batcher.submit(function, _x(4.0))
    alone.cancel()
    time.sleep(0.4)
    assert calls == [2, 2, 2], "a batch of callers who all gave up does not run"
    np.testing.assert_array_equal(batcher.submit(function, _x(5.0)).result(timeout=5)["y"], [10.0])


def test_a_worker_survives_a_failure_outside_the_model_call(monkeypatch):
    monkeypatch.setattr(signature_calls, "run", _double([]))
    real_run_batch = Batcher._run_batch
    failures = [RuntimeError("bug")]

    def flaky(function, items):
        if failures:
            raise failures.pop()
        real_run_batch(function, items)

    monkeypatch.setattr(Batcher, "_run_batch", staticmethod(flaky))
    batcher = Batcher(BatchingParameters(max_batch_size=4, batch_timeout_micros=10_000, num_batch_threads=1))
    with pytest.raises(ServingError) as failure:
        batcher.submit(object, _x(1.0)).result(timeout=5)
    assert failure.value.code == grpc.StatusCode.INTERNAL and "RuntimeError: bug" in failure.value.message
    np.testing.assert_array_equal(batcher.submit(object, _x(1.0)).result(timeout=5)["y"], [2.0])


def test_a_result_for_a_caller_that_gave_up_is_dropped_quietly():
    future = concurrent.futures.Future()
    future.cancel()
    batching._settle(future, {"y": 1})
    batching._settle(future, error=ValueError("x"))
    done = concurrent.futures.Future()
    batching._settle(done, 1)
    batching._settle(done, 2)
    assert done.result() == 1


def test_a_full_queue_refuses_at_once_with_tf_servings_status(monkeypatch):
    monkeypatch.setattr(signature_calls, "run", _double([]))
    batcher = Batcher(BatchingParameters(max_batch_size=4, batch_timeout_micros=300_000, num_batch_threads=1,
                                         max_enqueued_batches=2))
    function, other = object(), object()
    first = batcher.submit(function, _x(1.0, 2.0, 3.0))  # the open batch
    second = batcher.submit(function, _x(1.0, 2.0, 3.0))  # closes the first, opens a second: 2 enqueued
    batcher.submit(function, _x(1.0))  # still fits the open batch
    with pytest.raises(ServingError) as failure:
        batcher.submit(function, _x(1.0, 2.0))  # would need a third
    assert (failure.value.code, failure.value.message, failure.value.http_status) == (
        grpc.StatusCode.UNAVAILABLE, QUEUE_FULL, 503)
    batcher.submit(other, _x(1.0)).result(timeout=5)  # each signature has a queue of its own
    first.result(timeout=5)
    second.result(timeout=5)
    batcher.submit(function, _x(1.0, 2.0)).result(timeout=5)


def test_max_enqueued_batches_is_read_and_checked(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 64 }\nmax_enqueued_batches { value: 100 }\n")
    assert read_batching_parameters(str(path)) == BatchingParameters(max_batch_size=64, max_enqueued_batches=100)
    assert BatchingParameters().max_enqueued_batches == 10  # TF Serving's default
    path.write_text("max_enqueued_batches { value: 0 }\n")
    with pytest.raises(ValueError, match="max_enqueued_batches"):
        read_batching_parameters(str(path))
