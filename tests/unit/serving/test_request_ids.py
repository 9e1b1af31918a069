"""Request ids: the one rule both ends use for x-request-id, and their field in a PredictionLog record."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from serving.request_ids import HEADER, REQUEST_IDS_FIELD, check_header, header_value, ids_of, row_ids, with_ids

ALLOWED = "one id for the request, or one id per row separated by commas"


def test_one_id_names_a_lone_row_and_numbers_the_rows_of_a_batch():
    assert row_ids("order-17", 1) == ("order-17", ["order-17"])
    assert row_ids("order-17", 3) == ("order-17", ["order-17-0", "order-17-1", "order-17-2"])


def test_a_list_gives_each_row_its_own_id_in_row_order():
    assert row_ids("b,a,c", 3) == ("b,a,c", ["b", "a", "c"])


def test_ids_may_use_any_printable_ascii_but_space_and_comma():
    punctuation = "trace:4bf9/2;span=00f0?x&y=[1]~!#$%^*()'\"<>|\\{}_.+@`"
    longest = "x" * 128
    assert row_ids(punctuation, 1)[1] == [punctuation]
    assert row_ids(longest, 1)[1] == [longest]


@pytest.mark.parametrize("header", [None, ""])
def test_without_an_id_a_new_one_is_made_for_each_request(header):
    echo, ids = row_ids(header, 2)
    assert re.fullmatch(r"[0-9a-f]{32}", echo)  # uuid4().hex
    assert ids == [f"{echo}-0", f"{echo}-1"]
    assert row_ids(header, 1)[0] != echo


@pytest.mark.parametrize("header, rows, named", [
    ("order 17", 1, "'order 17' is not a valid request id"),
    ("a,,c", 3, "'' is not a valid request id"),
    ("a,b,", 3, "'' is not a valid request id"),
    ("x" * 129, 1, "is not a valid request id"),
    ("café", 1, "'café' is not a valid request id"),
    ("tab\there", 1, "is not a valid request id"),
    ("a,b", 3, "holds 2 ids for 3 rows"),
    ("a,b,c", 1, "holds 3 ids for 1 row."),
])
def test_bad_headers_are_refused_with_what_is_wrong_and_what_is_allowed(header, rows, named):
    with pytest.raises(ValueError) as refused:
        row_ids(header, rows)
    message = str(refused.value)
    assert message.startswith(HEADER) and named in message
    assert ALLOWED in message and "1 to 128 printable ASCII characters other than space and comma" in message


def test_a_long_bad_id_is_shortened_in_the_message():
    with pytest.raises(ValueError) as refused:
        check_header("a b" * 1000)
    assert len(str(refused.value)) < 300


def test_clients_send_one_id_or_a_list_and_learn_of_bad_ones_before_sending():
    assert header_value(None, 3) is None and header_value("", 3) is None
    assert header_value("order-17", 3) == "order-17"
    assert header_value(["a", "b", "c"], 3) == "a,b,c"
    assert header_value(("only",), 1) == "only"
    with pytest.raises(ValueError, match="2 request ids for 3 rows"):
        header_value(["a", "b"], 3)
    with pytest.raises(ValueError, match="'a b' is not a valid request id"):
        header_value(["a b", "c"], 2)
    with pytest.raises(ValueError, match="holds 2 ids for 1 row"):
        header_value(["a,b"], 1)


def test_a_per_row_list_must_fit_in_a_header():
    fits = [f"{row:032x}" for row in range(217)]
    assert len(header_value(fits, 217)) == 217 * 33 - 1
    with pytest.raises(ValueError, match="more than servers take in a header.*send one id for the request"):
        header_value(fits + ["f" * 32], 218)
    assert header_value("f" * 32, 10_000) == "f" * 32  # one id for any batch


def _prediction_log():
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2
    entry = prediction_log_pb2.PredictionLog()
    entry.log_metadata.model_spec.name = "m"
    entry.log_metadata.timestamp_secs = 1_700_000_000
    request = entry.predict_log.request
    request.model_spec.name, request.model_spec.version_label = "m", "stable"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([b"one", b"two"]))
    entry.predict_log.response.outputs["y"].CopyFrom(tf.make_tensor_proto([[0.25], [0.75]]))
    return entry


def test_a_record_with_ids_is_a_plain_prediction_log_with_the_ids_in_field_1000():
    from tensorflow_serving.apis import prediction_log_pb2
    entry = _prediction_log()
    plain = entry.SerializeToString()
    record = with_ids(plain, ["r-0", "r-1"])
    assert record.startswith(plain)  # byte for byte TF Serving's record, then the extra field
    assert ids_of(record) == ["r-0", "r-1"]
    parsed = prediction_log_pb2.PredictionLog.FromString(record)
    # Field 1000 is no field of PredictionLog: readers keep it as an unknown field, and pass it on.
    assert REQUEST_IDS_FIELD not in {field.number for field in parsed.DESCRIPTOR.fields}
    assert ids_of(parsed.SerializeToString()) == ["r-0", "r-1"]
    parsed.DiscardUnknownFields()
    assert parsed == entry
    assert parsed.predict_log.request.model_spec.version_label == "stable"


def test_records_without_ids_read_as_none():
    plain = _prediction_log().SerializeToString()
    assert with_ids(plain, []) == with_ids(plain, None) == plain
    assert ids_of(plain) == [] and ids_of(b"") == []


def test_the_module_imports_without_tensorflow():
    # Clients and log readers import it; TensorFlow takes seconds to import.
    code = "import sys, serving.request_ids; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
