"""TFLite conversion of a signature with a vocabulary read from a file, as Transform writes them."""
import numpy as np
import pytest
import tensorflow as tf

from models import edge_export


class _VocabularyModel(tf.Module):
    """Text -> id through a file-backed table (unknown -> one OOV id) -> embedding, beside a number."""

    def __init__(self, vocabulary_file: str):
        super().__init__()
        initializer = tf.lookup.TextFileInitializer(
            vocabulary_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        self.table = tf.lookup.StaticHashTable(initializer, default_value=-1)
        self.embedding = tf.Variable(tf.random.stateless_normal([4, 3], seed=[1, 2]))
        self.weights = tf.Variable(tf.random.stateless_normal([4, 1], seed=[3, 4]))

    @tf.function(input_signature=[{"company": tf.TensorSpec([None], tf.string, name="company"),
                                   "fare": tf.TensorSpec([None], tf.float32, name="fare")}])
    def predict(self, features):
        ids = self.table.lookup(features["company"])
        ids = tf.where(ids < 0, tf.constant(3, tf.int64), ids)
        joined = tf.concat([tf.gather(self.embedding, ids), tf.reshape(features["fare"], [-1, 1])], axis=1)
        return {"score": tf.sigmoid(joined @ self.weights)}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocabulary_model")
    vocabulary = folder / "company_vocab"
    vocabulary.write_text("Flash Cab\nTaxi Affiliation Services\nSun Taxi\n")
    model = _VocabularyModel(str(vocabulary))
    tf.saved_model.save(model, str(folder / "model"), signatures={"raw": model.predict.get_concrete_function()})
    return str(folder / "model")


@pytest.mark.timeout(120)
def test_file_backed_vocabulary_converts_and_answers_a_first_single_row(saved_model):
    runner = edge_export.runner(edge_export.convert(saved_model, "raw"), "raw")
    loaded = tf.saved_model.load(saved_model).signatures["raw"]
    for company, fare in [(b"Sun Taxi", 12.5), (b"Flash Cab", 3.0), (b"a new company", 40.0)]:
        inputs = {"company": np.array([company]), "fare": np.array([fare], np.float32)}
        expected = loaded(company=tf.constant(inputs["company"]), fare=tf.constant(inputs["fare"]))["score"]
        np.testing.assert_allclose(runner(**inputs)["score"], expected.numpy(), rtol=0, atol=1e-6)


@pytest.mark.timeout(120)
def test_unknown_signature_is_named_with_the_ones_there_are(saved_model):
    with pytest.raises(ValueError, match=r"no signature 'serving_raw'.*\['raw'\]"):
        edge_export.convert(saved_model, "serving_raw")


def test_broadcast_keeps_unknown_batch_sizes():
    assert edge_export._broadcast([[-1], [], [1]]) == [-1]
    assert edge_export._broadcast([[-1, 1], [3]]) == [-1, 3]
