"""The Keras model builds, trains a step on transformed data, and its loss goes down."""
import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from models.model import Hyperparameters, build_model, train


def _batch(size=32, seed=0):
    rng = np.random.default_rng(seed)
    features = {}
    for feature in F.FEATURES:
        if feature.kind == "zscore":
            features[feature.transformed_name] = tf.constant(rng.normal(size=size), tf.float32)
        else:
            features[feature.transformed_name] = tf.constant(rng.integers(0, feature.size, size), tf.int64)
    # A label the model can learn: it follows the sign of the fare input.
    labels = tf.cast(features["fare_xf"] > 0, tf.int64)
    return features, labels


def test_model_takes_every_transformed_feature():
    model = build_model(Hyperparameters())
    assert set(model.input.keys()) == {feature.transformed_name for feature in F.FEATURES}
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
    assert "step 30/30" in capsys.readouterr().out


def test_unknown_hyperparameter_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown hyperparameters \\['hidden'\\]"):
        Hyperparameters.from_dict({"hidden": [3]})
    assert Hyperparameters.from_dict({"hidden_units": [16]}).hidden_units == (16,)
