"""The taxi-tip TFX pipeline: configuration, components, runners and the command line."""

import os as _os

# TensorFlow 2.16 defaults to Keras 3, which TFX 1.16 and TFMA cannot use; tf-keras (Keras 2)
# is picked only if this is set before TensorFlow is first imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up notices (CUDA not found, CPU features) are not actionable here.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
