"""The Keras model builds, trains a step on transformed data, and its loss goes down."""
import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from models.model import Hyperparameters, build_model, embedding_size, train


def _batch(size=32, seed=0):
    rng = np.random.default_rng(seed)
    features = {}
    for feature in F.MODEL_INPUTS:
        if F.is_numeric(feature):
            features[feature.transformed_name] = tf.constant(rng.normal(size=size), tf.float32)
        else:
            features[feature.transformed_name] = tf.constant(rng.integers(0, feature.size, size), tf.int64)
    # A label the model can learn: it follows the sign of the fare input.
    labels = tf.cast(features["fare_xf"] > 0, tf.int64)
    return features, labels


def test_model_takes_every_transformed_feature():
    model = build_model(Hyperparameters())
    assert set(model.input.keys()) == {feature.transformed_name for feature in F.MODEL_INPUTS}
    probabilities = model(_batch(8)[0]).numpy()
    assert probabilities.shape == (8, 1)
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_training_steps_lower_the_loss(capsys):
    model = build_model(Hyperparameters(learning_rate=0.05))
    data = tf.data.Dataset.from_tensors(_batch(64)).repeat()
    loss = tf.keras.losses.BinaryCrossentropy()
    features, labels = _batch(64)
    before = float(loss(labels, model(features)))
    result = train(model, data, data, train_steps=30, eval_steps=1)
    assert result["eval_loss"] < before
    assert result["eval_auc"] > 0.9
    # Progress lines show the eval split's loss; training may stop early once it is 0.
    out = capsys.readouterr().out
    assert "step 6/30: loss" in out and "kept the weights of step" in out


def test_each_payment_type_has_its_own_output_head():
    # Same features, different payment type: with a head per payment type the outputs differ
    # even where the shared layers see almost the same input.
    model = build_model(Hyperparameters(payment_heads=True))
    features, _ = _batch(4)
    features = {name: value for name, value in features.items()}
    cash = dict(features, payment_type_xf=tf.zeros(4, tf.int64))
    card = dict(features, payment_type_xf=tf.ones(4, tf.int64))
    assert not np.allclose(model(cash).numpy(), model(card).numpy())


def test_embeddings_grow_with_the_vocabulary_up_to_the_cap():
    assert embedding_size(11, 8) < embedding_size(101, 8) <= 8
    assert embedding_size(1111, 8) == 8 and embedding_size(2, 8) == 2


def test_early_stopping_keeps_the_best_weights(capsys):
    model = build_model(Hyperparameters(learning_rate=0.05))
    data = tf.data.Dataset.from_tensors(_batch(64)).repeat()
    # Labels the features cannot predict: eval loss stops improving, training stops early.
    labels = tf.constant(np.random.default_rng(1).integers(0, 2, 64))
    noise = tf.data.Dataset.from_tensors((_batch(64)[0], labels)).repeat()
    result = train(model, noise, data, train_steps=100, eval_steps=1, checks=10, patience=2)
    out = capsys.readouterr().out
    assert "stopping early" in out and "kept the weights of step" in out
    printed = [float(line.split("eval_loss ")[1].split(",")[0])
               for line in out.splitlines() if line.startswith("step ")]
    assert result["eval_loss"] == pytest.approx(min(printed), abs=1e-4) and len(printed) < 10


def test_unknown_hyperparameter_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown hyperparameters \\['hidden'\\]"):
        Hyperparameters.from_dict({"hidden": [3]})
    assert Hyperparameters.from_dict({"hidden_units": [16]}).hidden_units == (16,)
