"""The signature names both serving ends spell agree with TensorFlow's, which SavedModels and
tensorflow_model_server use."""
import pytest
from tensorflow.python.saved_model import signature_constants

from serving import signature_names


@pytest.mark.timeout(120)
def test_signature_names_are_tensorflows():
    assert signature_names.DEFAULT_SIGNATURE == signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY
    assert signature_names.PREDICT_METHOD == signature_constants.PREDICT_METHOD_NAME
    assert signature_names.CLASSIFY_METHOD == signature_constants.CLASSIFY_METHOD_NAME
    assert signature_names.REGRESS_METHOD == signature_constants.REGRESS_METHOD_NAME
