"""REST request values become arrays under TF Serving's type and shape rules."""
import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving.server.errors import ServingError
from serving.server.json_input import json_inputs, tensor


@pytest.mark.parametrize("value, dtype, expected", [
    ([1, 2.5, float("nan"), float("-inf")], tf.float32, np.array([1, 2.5, np.nan, -np.inf], np.float32)),
    ([[1, 2], [3, 4]], tf.int64, np.array([[1, 2], [3, 4]], np.int64)),
    (2 ** 53 - 1, tf.float64, np.array(2 ** 53 - 1, np.float64)),
    ([True, False], tf.bool, np.array([True, False])),
    (["a", {"b64": "AAE="}], tf.string, np.array([b"a", b"\x00\x01"], dtype=object)),
    ([], tf.float32, np.zeros([0], np.float32)),
])
def test_values_that_fit_their_input(value, dtype, expected):
    array = tensor(value, dtype)
    assert array.dtype == expected.dtype and array.shape == expected.shape
    np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize("value, dtype, message", [
    ("1", tf.float32, 'JSON Value: "1" Type: String is not of expected type: float'),
    (1.0, tf.int64, "JSON Value: 1.0 Type: Number is not of expected type: int64"),
    (2 ** 31, tf.int32, "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
    (-1, tf.uint32, "JSON Value: -1 Type: Number is not of expected type: uint32"),
    (300, tf.int8, "JSON Value: 300 Type: Number is not of expected type: int8"),
    (1, tf.bool, "JSON Value: 1 Type: Number is not of expected type: bool"),
    (None, tf.float32, "JSON Value: null Type: Null is not of expected type: float"),
    ({"x": 1}, tf.float32, "Type: Object is not of expected type: float"),
    ({"x": 1}, tf.string, "not formatted correctly for base64 data"),
    ({"b64": "***"}, tf.string, "Unable to base64 decode"),
    (2 ** 24, tf.float32, "Cannot convert JSON value: 16777216 to float without loss of precision."),
    (1e39, tf.float32, "to float without loss of precision."),
    (10 ** 400, tf.float64, "to double without loss of precision."),
    ([[1, 2], [3]], tf.float32, "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ([[1], 2], tf.float32, "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ([1, [2]], tf.float32, "Encountered list at unexpected level: 1 expected < 1"),
])
def test_values_that_do_not_fit_get_tf_servings_message(value, dtype, message):
    with pytest.raises(ServingError) as failure:
        tensor(value, dtype)
    assert failure.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in failure.value.message


def test_dtypes_json_cannot_carry_are_unimplemented():
    with pytest.raises(ServingError) as failure:
        tensor([1.0], tf.float16)
    assert failure.value.code == grpc.StatusCode.UNIMPLEMENTED and failure.value.http_status == 501
    assert failure.value.message == "Conversion of JSON Value: 1.0 to type: half"


def test_row_and_columnar_requests_give_the_same_tensors():
    dtypes = {"x": tf.float32, "tag": tf.string}
    rows, is_rows = json_inputs({"instances": [{"x": [1, 2], "tag": "a"}, {"x": [3, 4], "tag": "b"}]}, dtypes)
    columns, is_columns = json_inputs({"inputs": {"x": [[1, 2], [3, 4]], "tag": ["a", "b"], "unused": 1}}, dtypes)
    assert (is_rows, is_columns) == (True, False)
    for inputs in (rows, columns):
        np.testing.assert_array_equal(inputs["x"], np.array([[1, 2], [3, 4]], np.float32))
        assert inputs["tag"].tolist() == [b"a", b"b"]


@pytest.mark.parametrize("request_, message", [
    ({"instances": [{"x": [1, 2], "tag": "a"}, {"x": [3], "tag": "b"}]},
     "Failed to process element: 1 key: x of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 "
     "but got: 1"),
    ({"instances": [{"x": [1, 2], "tag": "a"}, {"x": [[3, 4]], "tag": "b"}]}, "Expecting shape [2] but got: [1,2]"),
    ({"instances": [{"x": 1, "tag": "a"}, [1]]}, "Expecting object but got list at item 1 of input list"),
    ({"instances": [{"x": 1}]}, "keys must be equal to: tag,x"),
    ({"instances": [1.0]}, "instances is a plain list, but expecting list of objects"),
    ({"inputs": [1.0]}, "inputs is a plain value/list, but expecting an object"),
    ({"inputs": {"x": [1.0]}}, "Missing named input: tag in 'inputs' object."),
])
def test_request_shape_errors(request_, message):
    with pytest.raises(ServingError) as failure:
        json_inputs(request_, {"x": tf.float32, "tag": tf.string})
    assert message in failure.value.message
