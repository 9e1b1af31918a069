"""The TensorFlow Lite copy in an exported version predicts what the SavedModel predicts."""
import os

import numpy as np
import pytest
import tensorflow as tf

from models import edge_export
from models import features as F
from models.signatures import OUTPUT_KEY, RAW_SIGNATURE
from serving.clients.request_encoding import rows_to_named_features
from tests.conftest import shipped_lines

pytestmark = pytest.mark.slow

# Rows of the newest span after the 1,500 the shared model trained on: unseen, like evaluation rows.
EVAL_ROWS = slice(1501, 3501)


@pytest.fixture(scope="module")
def evaluation_inputs():
    import csv
    lines = shipped_lines(4)
    rows = list(csv.DictReader([lines[0], *lines[EVAL_ROWS]]))
    assert any(row["company"] == "" for row in rows), "the rows should include gaps (filled with defaults)"
    named = rows_to_named_features(rows, F.feature_types(), {f.name: f.default for f in F.FEATURES})
    return {f.name: np.asarray(named[f.name], dtype=f.dtype.as_numpy_dtype) for f in F.FEATURES}


@pytest.fixture(scope="module")
def edge(exported_model_dir):
    path = os.path.join(exported_model_dir, "assets.extra", edge_export.TFLITE_FILE)
    with open(path, "rb") as handle:
        flatbuffer = handle.read()
    return flatbuffer, edge_export.read_record(str(exported_model_dir))


def _saved_model_probabilities(exported_model_dir, inputs) -> np.ndarray:
    raw = tf.saved_model.load(str(exported_model_dir)).signatures[RAW_SIGNATURE]
    return raw(**{name: tf.constant(value) for name, value in inputs.items()})[OUTPUT_KEY].numpy()


@pytest.mark.timeout(300)
def test_exported_version_carries_the_tflite_model_and_its_record(edge):
    flatbuffer, record = edge
    assert record["bytes"] == len(flatbuffer) > 0
    assert record["signature"] == RAW_SIGNATURE
    # Transform's hashing and bucketizing have no TFLite builtin: a runtime needs the Flex delegate.
    assert "StringToHashBucketFast" in record["select_tf_ops"]
    assert 0 < record["median_latency_ms"] < 50
    runner = edge_export.runner(flatbuffer, RAW_SIGNATURE)
    assert set(runner.get_input_details()) == {feature.name for feature in F.FEATURES}
    assert set(runner.get_output_details()) == {OUTPUT_KEY}


@pytest.mark.timeout(300)
def test_tflite_matches_the_saved_model_on_evaluation_rows(exported_model_dir, edge, evaluation_inputs):
    flatbuffer, _ = edge
    expected = _saved_model_probabilities(exported_model_dir, evaluation_inputs)
    batch = edge_export.runner(flatbuffer, RAW_SIGNATURE)(**evaluation_inputs)[OUTPUT_KEY]
    assert batch.shape == expected.shape == (2000, 1)
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-5)
    assert 0 < expected.min() and expected.max() < 1


@pytest.mark.timeout(300)
def test_tflite_answers_single_rows_from_its_first_call(exported_model_dir, edge, evaluation_inputs):
    """Edge devices score one trip at a time; a fresh interpreter's first call is a single row."""
    flatbuffer, _ = edge
    expected = _saved_model_probabilities(exported_model_dir, evaluation_inputs)[:50]
    fresh = edge_export.runner(flatbuffer, RAW_SIGNATURE)
    one_by_one = [fresh(**{name: value[i:i + 1] for name, value in evaluation_inputs.items()})[OUTPUT_KEY]
                  for i in range(50)]
    np.testing.assert_allclose(np.concatenate(one_by_one), expected, rtol=0, atol=1e-5)


@pytest.mark.timeout(60)
def test_model_card_shows_the_edge_models_size_latency_and_flex_ops(edge):
    from pipeline.governance.model_card import edge_model_lines
    flatbuffer, record = edge
    text = "\n".join(edge_model_lines(record))
    assert f"{len(flatbuffer) / 1024:.1f} KiB" in text
    assert f"{record['median_latency_ms']:.3f} ms" in text
    assert "StringToHashBucketFast" in text and edge_export.TFLITE_FILE in text
    assert "none" in edge_model_lines(None)[0]
