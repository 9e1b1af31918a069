"""Numbers in REST responses are written as TF Serving writes them."""
import pytest

from serving.json_output import format_float


@pytest.mark.parametrize("value, text", [
    (3.0, "3.0"), (3.5, "3.5"), (1e-05, "1e-05"), (1 / 3, "0.333333343"), (0.25, "0.25"),
    (float("nan"), "NaN"), (float("-inf"), "-Infinity"), (123456789.0, "123456792.0"),
])
def test_floats(value, text):
    assert format_float(value) == text
