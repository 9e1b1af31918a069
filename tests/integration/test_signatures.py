"""The exported SavedModel predicts raw CSV rows the same through both serving signatures."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from models import features as F
from models.signatures import OUTPUT_KEY
from serving.clients.request_encoding import read_csv_rows, row_to_example
from tests.signature_checks import predict_both_ways

TYPES = F.feature_types()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(exported_model_dir, small_csv):
    return tf.saved_model.load(str(exported_model_dir)), list(read_csv_rows(str(small_csv)))


def test_signatures_are_exported(exported):
    loaded, _ = exported
    assert set(loaded.signatures) == {"serving_default", "serving_raw", "transform_features", "classification",
                                      "regression"}
    raw_inputs = loaded.signatures["serving_raw"].structured_input_signature[1]
    assert set(raw_inputs) == {feature.name for feature in F.FEATURES}


def test_the_transform_layer_is_saved_without_keras_traces(exported_model_dir):
    """The export skips Keras' traces of the transform layer (most of its time); if tf_keras moves that
    switch, the export still works but slowly, and this test says so."""
    saved = saved_model_pb2.SavedModel.FromString((exported_model_dir / "saved_model.pb").read_bytes())
    functions = [function.signature.name for function in saved.meta_graphs[0].graph_def.library.function]
    assert any("transform_features" in name for name in functions)
    assert not [name for name in functions if "call_and_return_conditional_losses" in name]


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
    example = row_to_example(rows[0], TYPES)
    example.features.feature[F.LABEL_KEY].float_list.value.append(float(rows[0]["fare"] or 0) + 1)
    transformed = loaded.signatures["transform_features"](examples=tf.constant([example.SerializeToString()]))
    assert transformed[F.TRANSFORMED_LABEL_KEY].numpy().tolist() == [1]


def test_classify_and_regress_signatures_carry_tf_servings_method_names(exported, exported_model_dir):
    from tensorflow.python.saved_model import loader_impl
    definitions = loader_impl.parse_saved_model(str(exported_model_dir)).meta_graphs[0].signature_def
    assert definitions["classification"].method_name == "tensorflow/serving/classify"
    assert set(definitions["classification"].inputs) == {"inputs"}
    assert set(definitions["classification"].outputs) == {"classes", "scores"}
    assert definitions["regression"].method_name == "tensorflow/serving/regress"
    assert set(definitions["regression"].outputs) == {"outputs"}
    assert definitions["serving_default"].method_name == "tensorflow/serving/predict"
    assert tf.saved_model.experimental.read_fingerprint(str(exported_model_dir)).saved_model_checksum


def test_classify_and_regress_signatures_agree_with_serving_default(exported):
    loaded, rows = exported
    serialized = tf.constant([row_to_example(row, TYPES).SerializeToString() for row in rows[:5]])
    probability = loaded.signatures["serving_default"](examples=serialized)[OUTPUT_KEY].numpy().reshape(-1)
    classified = loaded.signatures["classification"](inputs=serialized)
    assert classified["classes"].numpy().tolist() == [[b"0", b"1"]] * 5
    np.testing.assert_allclose(classified["scores"].numpy()[:, 1], probability, atol=1e-6)
    np.testing.assert_allclose(classified["scores"].numpy().sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(loaded.signatures["regression"](inputs=serialized)["outputs"].numpy(), probability,
                               atol=1e-6)
