"""Numbers in REST responses are written as TF Serving writes them."""
import pytest

from serving.server.json_output import format_float


@pytest.mark.parametrize("value, text", [
    (3.0, "3.0"), (3.5, "3.5"), (1e-05, "1e-05"), (1 / 3, "0.333333343"), (0.25, "0.25"),
    (float("nan"), "NaN"), (float("-inf"), "-Infinity"), (123456789.0, "123456792.0"),
])
def test_floats(value, text):
    assert format_float(value) == text


def test_response_bodies():
    import numpy as np

    from serving.server.json_output import FloatArray, dumps
    scores = FloatArray(np.array([[1 / 3], [3.0]], dtype=np.float32))
    assert dumps({"predictions": scores}) == '{"predictions": [[0.333333343], [3.0]]}'
    assert dumps([{"p": scores[1], "n": 7, "label": "a\""}]) == '[{"p": [3.0], "n": 7, "label": "a\\""}]'
    assert dumps(FloatArray(np.array([0.1]))) == "[0.1]"  # a double keeps 17 digits only when it needs them
