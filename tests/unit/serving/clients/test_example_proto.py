"""The REST client's tf.Examples, built without TensorFlow, are the messages and bytes
tf.train.Example gives for the same rows."""
import math

import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2

from serving.clients.example_proto import Example
from serving.clients.request_encoding import (
    example_to_json,
    feature_types_from_schema,
    json_examples,
    read_csv_rows,
    row_to_example,
    serialized_examples,
)
from tests.conftest import SCHEMA, SHIPPED_SPANS

pytestmark = pytest.mark.timeout(120)

TYPES = feature_types_from_schema(str(SCHEMA))  # every serving column of the shipped data, typed
# Cells the shipped data rarely or never has: what a caller may still send.
ODD_TYPES = {"i": "int", "f": "float", "s": "bytes"}
ODD_ROWS = [
    {},
    {"i": "", "f": "", "s": ""},
    {"i": "0", "f": "0", "s": "0"},
    {"i": "-1", "f": "-0.0", "s": " "},
    {"i": "12.0", "f": "12.45", "s": "Taxi Affiliation Services"},
    {"i": str(2**53), "f": "1e-45", "s": "Zoë's Cab — 出租车 🚕"},
    {"i": str(-2**53), "f": "3.4028235e38", "s": "a,b\n\"c\""},
    {"i": "7", "f": "1e40", "s": "\x00"},
    {"i": "7", "f": "-inf", "s": "x" * 300},
    {"i": "7", "f": "nan"},
    {"f": "17031081500.0", "extra": "ignored"},
]


def _descriptors(message) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Every message type reachable from `message`, by full name."""
    found, todo = {}, [message.DESCRIPTOR]
    while todo:
        descriptor = todo.pop()
        if descriptor.full_name not in found:
            found[descriptor.full_name] = descriptor_pb2.DescriptorProto()
            descriptor.CopyToProto(found[descriptor.full_name])
            todo += [field.message_type for field in descriptor.fields if field.message_type]
    return found


def _shipped_rows(limit: int) -> list[dict[str, str]]:
    spans = [list(read_csv_rows(str(SHIPPED_SPANS / f"span-{span}" / "data.csv"))) for span in (1, 4)]
    return [row for rows in spans for row in rows[:limit]]


def test_messages_are_declared_as_tensorflow_declares_them():
    # Names, field numbers, types, packed lists, the oneof and the map entry: all of the wire format.
    assert _descriptors(Example) == _descriptors(tf.train.Example)


@pytest.mark.parametrize("rows, types", [(_shipped_rows(500), TYPES), (ODD_ROWS, ODD_TYPES)],
                         ids=["shipped rows", "odd cells"])
def test_serialized_examples_are_tf_examples(rows, types):
    sent = serialized_examples(rows, types)
    for row, serialized in zip(rows, sent, strict=True):
        expected = row_to_example(row, types)
        # The same bytes once map entries are in key order (tf.train.Example's own order is its hash table's)...
        assert Example.FromString(serialized).SerializeToString(deterministic=True) == \
            expected.SerializeToString(deterministic=True), row
        # ...and TensorFlow reads them back as the Example it would have built.
        if "nan" not in row.values():  # nan != nan, so compare that row by its text
            assert tf.train.Example.FromString(serialized) == expected, row
        else:
            assert str(tf.train.Example.FromString(serialized)) == str(expected)


def test_odd_cells_keep_their_values():
    [big, tiny, huge, nan] = [tf.train.Example.FromString(serialized).features.feature for serialized in
                              serialized_examples([ODD_ROWS[5], ODD_ROWS[6], ODD_ROWS[7], ODD_ROWS[9]], ODD_TYPES)]
    assert big["i"].int64_list.value == [2**53] and big["f"].float_list.value[0] > 0
    assert big["s"].bytes_list.value == ["Zoë's Cab — 出租车 🚕".encode()]
    assert tiny["i"].int64_list.value == [-2**53]
    assert huge["f"].float_list.value == [math.inf]  # beyond float32, as tf.train.Example stores it
    assert math.isnan(nan["f"].float_list.value[0]) and "s" not in nan


def test_an_int64_out_of_range_is_refused_as_tf_example_refuses_it():
    with pytest.raises(ValueError) as ours:
        serialized_examples([{"i": str(2**64)}], ODD_TYPES)
    with pytest.raises(ValueError) as tensorflows:
        row_to_example({"i": str(2**64)}, ODD_TYPES)
    assert str(ours.value) == str(tensorflows.value)


def test_json_examples_are_the_json_of_tf_examples():
    rows = _shipped_rows(50) + [row for row in ODD_ROWS if "nan" not in row.values()]
    for row in rows:
        types = TYPES if "fare" in row else ODD_TYPES
        assert json_examples([row], types) == [example_to_json(row_to_example(row, types))], row
