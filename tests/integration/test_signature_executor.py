"""Signatures run on TensorFlow's single-threaded executor, and fall back when a graph needs the default one."""
import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from serving.clients.request_encoding import read_csv_rows, row_to_example
from serving.server import signature_calls

TYPES = F.feature_types()


def _saved_signature(tmp_path, with_cond: bool):
    """A saved and reloaded signature y = 2x; with a tf.cond in it, its graph runs with Switch nodes."""
    def double(x):
        if with_cond:
            return {"y": tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2, lambda: x * 3)}
        return {"y": x * 2}

    module = tf.Module()
    module.f = tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])(double)
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.f})
    return tf.saved_model.load(str(tmp_path)).signatures["serving_default"]


@pytest.mark.parametrize("with_cond", [False, True])
def test_signature_answers_on_either_executor(tmp_path, with_cond):
    function = _saved_signature(tmp_path, with_cond)
    for _ in range(2):  # the second call takes the executor the first one settled on
        outputs = signature_calls.run(function, {"x": np.array([1.0, 2.0], np.float32)})
        np.testing.assert_allclose(outputs["y"], [2.0, 4.0])
    assert (function in signature_calls._NEEDS_DEFAULT_EXECUTOR) == with_cond


def test_taxi_signature_runs_single_threaded_with_the_same_answers(exported_model_dir, small_csv):
    function = tf.saved_model.load(str(exported_model_dir)).signatures["serving_default"]
    rows = list(read_csv_rows(str(small_csv)))[:20]
    examples = np.array([row_to_example(row, TYPES).SerializeToString() for row in rows], dtype=object)
    served = signature_calls.run(function, {"examples": examples})
    assert function not in signature_calls._NEEDS_DEFAULT_EXECUTOR
    direct = function(examples=tf.constant(examples))  # TensorFlow's default executor
    for name, value in direct.items():
        np.testing.assert_allclose(served[name], value.numpy(), atol=1e-6)
