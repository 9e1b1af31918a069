"""Model code run by TFX Transform and Trainer: features, preprocessing, model, signatures."""

import os as _os

# TensorFlow 2.16 defaults to Keras 3, which TFX 1.16 and TFMA cannot use; tf-keras (Keras 2)
# is picked only if this is set before TensorFlow is first imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
