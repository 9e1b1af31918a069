"""TF Serving's signature key and method names, shared by the server and the clients.

The values of TensorFlow's tf.saved_model constants (signature_constants.py), spelled here so
a client can use them without importing TensorFlow (seconds); tests/unit/serving/
test_signature_names.py checks that they still agree with TensorFlow's.
"""

# The signature a request without a signature name goes to.
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
