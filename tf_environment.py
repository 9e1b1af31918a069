"""The TensorFlow environment every process of the project starts with; import it before TensorFlow.

The one place these are set. `pipeline`, `models`, the model server, the client, the
tests and the benchmarks import this module first; the values only take effect if
TensorFlow has not been imported yet.
"""
import os

# TensorFlow 2.16 defaults to Keras 3, which TFX 1.16 and TFMA cannot use; tf-keras
# (Keras 2) is picked only if this is set before TensorFlow first loads Keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up notices (CUDA not found, CPU features, oneDNN) are nothing a
# user of this project can act on. Errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
