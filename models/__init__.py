"""Model code run by TFX Transform and Trainer: features, preprocessing, model, signatures."""

import tf_environment  # noqa: F401  (before anything imports TensorFlow)
