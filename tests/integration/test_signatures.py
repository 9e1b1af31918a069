"""The exported SavedModel predicts raw CSV rows the same through both serving signatures."""
import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from serving.examples import read_csv_rows, row_to_example
from tests.signature_checks import predict_both_ways

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(exported_model_dir, small_csv):
    return tf.saved_model.load(str(exported_model_dir)), list(read_csv_rows(str(small_csv)))


def test_signatures_are_exported(exported):
    loaded, _ = exported
    assert set(loaded.signatures) == {"serving_default", "serving_raw", "transform_features"}
    raw_inputs = loaded.signatures["serving_raw"].structured_input_signature[1]
    assert set(raw_inputs) == {feature.name for feature in F.FEATURES}


def test_both_signatures_give_the_same_probabilities(exported):
    loaded, rows = exported
    sample = rows[:200]
    assert any(row["company"] == "" for row in sample), "the sample should include rows with gaps"
    from_examples, from_named = predict_both_ways(loaded, sample)
    assert from_examples.shape == (200, 1)
    np.testing.assert_allclose(from_examples, from_named, atol=1e-6)
    assert 0 < from_examples.min() and from_examples.max() < 1


def test_transform_features_computes_the_label(exported):
    loaded, rows = exported
    example = row_to_example(rows[0])
    example.features.feature[F.LABEL_KEY].float_list.value.append(float(rows[0]["fare"] or 0) + 1)
    transformed = loaded.signatures["transform_features"](examples=tf.constant([example.SerializeToString()]))
    assert transformed[F.TRANSFORMED_LABEL_KEY].numpy().tolist() == [1]
