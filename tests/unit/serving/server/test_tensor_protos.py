"""The gRPC API's fast TensorProto conversions agree with TensorFlow's own."""
import numpy as np
import pytest
import tensorflow as tf

from serving.tensor_protos import to_ndarray, to_tensor_proto


@pytest.mark.parametrize("array", [
    np.array([[0.25], [0.5]], dtype=np.float32),
    np.array([1, 2, 3], dtype=np.int64),
    np.array([[True, False]]),
    np.array([b"a\x00", b"b"], dtype=object),
    np.array(3.5, dtype=np.float64),
    np.array([[1, 2]], dtype=np.int16),  # through TensorFlow
])
def test_round_trip_matches_tensorflow(array):
    proto = to_tensor_proto(array)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    np.testing.assert_array_equal(to_ndarray(proto), array)
    assert to_ndarray(proto).shape == array.shape


def test_reads_what_tensorflow_writes():
    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros([4], np.float32), [b"x", b"y"]):
        proto = tf.make_tensor_proto(value)  # tensor_content, or one repeated value
        np.testing.assert_array_equal(to_ndarray(proto), tf.make_ndarray(proto))
