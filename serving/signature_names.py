"""TF Serving's signature key and method names, shared by the server and the clients.

Taken from TensorFlow rather than spelled out, so both ends agree with what
tf.saved_model.save and tensorflow_model_server use.
"""
from tensorflow.python.saved_model import signature_constants

# The signature a request without a signature name goes to.
DEFAULT_SIGNATURE = signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY
PREDICT_METHOD = signature_constants.PREDICT_METHOD_NAME
CLASSIFY_METHOD = signature_constants.CLASSIFY_METHOD_NAME
REGRESS_METHOD = signature_constants.REGRESS_METHOD_NAME
