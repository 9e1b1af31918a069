"""The TensorFlow environment every process of the project starts with; import it before TensorFlow.

The one place these are set. `pipeline`, `models`, the model server, the client, the
tests and the benchmarks import this module first; the values only take effect if
TensorFlow has not been imported yet.
"""
import os

# TensorFlow 2.16 defaults to Keras 3, which TFX 1.16 and TFMA cannot use; tf-keras
# (Keras 2) is picked only if this is set before TensorFlow first loads Keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up notices (CUDA not found, CPU features, oneDNN, and the
# error-level "Unable to register cuDNN factory" lines every import prints) are nothing a
# user of this project can act on. Failures of TensorFlow's ops still reach Python as
# exceptions with their message.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# ML Metadata's C++ client logs an INFO line per connection to a database server
# ("Connecting to database."); warnings and errors (a refused login) still show.
os.environ.setdefault("GLOG_minloglevel", "1")
