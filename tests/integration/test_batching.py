"""Server-side batching: concurrent calls share one model call and get their own rows."""
from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from models.signatures import OUTPUT_KEY
from serving.clients.request_encoding import read_csv_rows, row_to_example
from serving.server import signature_calls
from serving.server.batching import Batcher, BatchingParameters, read_batching_parameters
from serving.server.errors import ServingError

pytestmark = pytest.mark.slow
SHIPPED = "serving/deploy/batching_parameters.txt"
TYPES = F.feature_types()


def test_concurrent_calls_are_batched_and_answered_row_by_row(exported_model_dir, small_csv, monkeypatch):
    function = tf.saved_model.load(str(exported_model_dir)).signatures["serving_default"]
    rows = list(read_csv_rows(str(small_csv)))[:32]
    requests = [{"examples": np.array([row_to_example(row, TYPES).SerializeToString()], dtype=object)} for row in rows]
    alone = [signature_calls.run(function, inputs)[OUTPUT_KEY] for inputs in requests]
    batch_sizes = []
    real_run = signature_calls.run
    monkeypatch.setattr(signature_calls, "run", lambda f, inputs: batch_sizes.append(len(inputs["examples"]))
                        or real_run(f, inputs))
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=50_000, num_batch_threads=2))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda inputs: batcher.submit(function, inputs).result()[OUTPUT_KEY], requests))
    for got, expected in zip(answers, alone):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert sum(batch_sizes) == 32 and max(batch_sizes) > 1, batch_sizes


def test_a_bad_request_fails_alone(exported_model_dir, small_csv):
    function = tf.saved_model.load(str(exported_model_dir)).signatures["serving_default"]
    good = {"examples": np.array([row_to_example(next(read_csv_rows(str(small_csv))), TYPES).SerializeToString()],
                                 dtype=object)}
    bad = {"examples": np.array([b"not an example"], dtype=object)}
    batcher = Batcher(BatchingParameters(max_batch_size=2, batch_timeout_micros=200_000))
    good_answer, bad_answer = batcher.submit(function, good), batcher.submit(function, bad)
    assert good_answer.result()[OUTPUT_KEY].shape == (1, 1)
    with pytest.raises(ServingError):
        bad_answer.result()


def test_batching_parameters_file(tmp_path):
    assert read_batching_parameters(SHIPPED) == BatchingParameters(64, 2000, 2, max_enqueued_batches=100)
    bad = tmp_path / "bad.txt"
    bad.write_text("max_batch_size: 3")
    with pytest.raises(ValueError, match="no batching parameter"):
        read_batching_parameters(str(bad))
