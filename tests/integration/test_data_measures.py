"""The CSV check and the drift/skew measures on real spans, without running the pipeline."""
from __future__ import annotations

import pytest

from pipeline.data_validation import drift
from pipeline.data_validation.serving_data import serving_statistics
from pipeline.data_validation.statistics_io import csv_statistics, load_schema
from pipeline.ingest.csv_rules import CsvError, _rows_if_clean, check_csv, check_spans, schema_columns
from tests.conftest import SCHEMA, SHIPPED_SPANS, shipped_lines, write_span
from tests.data_cases import drifted, edit_column, rows, without_column

CURATED = load_schema(str(SCHEMA))


def _statistics(tmp_path, name: str, lines: list[str]):
    path = tmp_path / f"{name}.csv"
    path.write_text("".join(lines))
    return csv_statistics([str(path)], CURATED)


def _by_feature(distances: list[drift.Distance]) -> dict[str, drift.Distance]:
    return {d.feature: d for d in distances}


def test_shipped_spans_pass_the_csv_check():
    assert check_spans(str(SHIPPED_SPANS), [1, 2, 3, 4], CURATED) == {1: 3088, 2: 3911, 3: 3698, 4: 4305}


def test_consecutive_shipped_spans_do_not_drift(tmp_path):
    before = csv_statistics([str(SHIPPED_SPANS / "span-3" / "data.csv")], CURATED)
    after = csv_statistics([str(SHIPPED_SPANS / "span-4" / "data.csv")], CURATED)
    measured = drift.measure(after, before, CURATED, "drift", "span 4", "span 3")
    assert not [d for d in measured if d.exceeded], measured
    # Every feature with a drift comparator is measured and recorded, plus the row count.
    compared = {f.name for f in CURATED.feature if f.HasField("drift_comparator")}
    assert set(_by_feature(measured)) == compared | {""}


def test_drifted_span_is_over_threshold_on_the_shifted_features_only(tmp_path):
    header, lines = rows(4, count=3000)
    before = _statistics(tmp_path, "before", [header] + lines)
    after = _statistics(tmp_path, "after", drifted([header] + lines))
    measured = _by_feature(drift.measure(after, before, CURATED, "drift", "span 2", "span 1"))
    assert {name for name, d in measured.items() if d.exceeded} == {"fare", "payment_type"}
    assert measured["fare"].comparator == drift.JENSEN_SHANNON and measured["fare"].value > 0.3
    assert measured["payment_type"].comparator == drift.L_INFINITY


def test_a_span_far_smaller_than_the_previous_one_is_a_volume_finding(tmp_path):
    header, lines = rows(4, count=3000)
    measured = _by_feature(drift.measure(_statistics(tmp_path, "small", [header] + lines[:300]),
                                         _statistics(tmp_path, "full", [header] + lines),
                                         CURATED, "drift", "span 2", "span 1"))
    assert measured[""].kind == "volume" and measured[""].exceeded
    assert measured[""].value == pytest.approx(0.1)


def test_serving_sample_from_the_training_span_shows_no_skew_and_a_skewed_one_does(tmp_path):
    header, lines = rows(4, count=4000)
    training = _statistics(tmp_path, "training", [header] + lines)
    sample = without_column([header] + lines[::8], "tips")  # 500 requests, no label
    skewed = edit_column(sample, "trip_miles", lambda value, _: f"{float(value) * 3 + 2:.2f}")
    fair = drift.measure(_statistics(tmp_path, "fair", sample), training, CURATED, "skew", "serving", "training")
    assert not [d for d in fair if d.exceeded], fair
    assert "tips" not in _by_feature(fair)  # the label is not in serving data
    unfair = _by_feature(drift.measure(_statistics(tmp_path, "skewed", skewed), training, CURATED, "skew",
                                       "serving", "training"))
    assert [name for name, d in unfair.items() if d.exceeded] == ["trip_miles"]


def test_request_log_is_serving_data(tmp_path):
    from models import features as F
    from serving.clients.request_encoding import read_csv_rows, serialized_examples
    from serving.server.request_log import RequestLog

    header, lines = rows(4, count=4000)
    training = _statistics(tmp_path, "training", [header] + lines)
    (tmp_path / "requests.csv").write_text("".join(without_column([header] + lines[1::10], "tips")))
    log = RequestLog(str(tmp_path / "log" / "requests-1.tfrecord"))
    requests = list(read_csv_rows(str(tmp_path / "requests.csv")))
    for start in range(0, len(requests), 20):  # as clients send them: batches of serialized tf.Examples
        batch = serialized_examples(requests[start:start + 20], F.feature_types())
        log.record("taxi-tips", 1, "serving_default", {"examples": batch}, {"tip_probability": [[0.5]] * len(batch)})
    log.close()
    statistics = serving_statistics(str(tmp_path / "log" / "requests-*.tfrecord"), CURATED)
    assert statistics.num_examples == len(requests)
    assert not [d for d in drift.measure(statistics, training, CURATED, "skew", "log", "training") if d.exceeded]


def test_serving_data_that_is_not_there_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no CSV file there and no logged tf.Examples"):
        serving_statistics(str(tmp_path / "nothing-*.tfrecord"), CURATED)


def test_csv_problems_name_file_line_and_column(tmp_path):
    header, lines = rows(4, count=5)
    columns = schema_columns(CURATED)
    path = write_span(tmp_path, 1, [header] + lines[:2] + [lines[2].replace(lines[2].split(",")[1], "twelve", 1)])
    with pytest.raises(CsvError, match=rf"{path} line 4: column 'fare' is 'twelve', not a number"):
        check_csv(str(path), columns)
    path.write_text(header + lines[0] + lines[1].replace(",", ",2.5,", 1))
    with pytest.raises(CsvError, match=rf"{path} line 3: 19 fields, more than the 18 columns of the header"):
        check_csv(str(path), columns)
    split_value = lines[1].replace(",Cash,", ',"Ca\nsh",', 1).replace(",Credit Card,", ',"Credit\nCard",', 1)
    path.write_text(header + lines[0] + split_value)
    with pytest.raises(CsvError, match=rf"{path} line 3: a quoted value spans lines 3-4"):
        check_csv(str(path), columns)
    path.write_text("".join([header] + lines).replace("\n", "\r\n"))  # Windows line ends are fine
    assert check_csv(str(path), columns) == 5


REPEATED_HEADER = "the first column's name"


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "0x10", "3.5", "twelve", REPEATED_HEADER])
def test_arrow_pass_leaves_every_doubtful_value_to_the_line_checks(value):
    """Arrow counts the rows of clean files; anything the line checks might stop on goes to them."""
    header, lines = rows(4, count=200)
    columns = schema_columns(CURATED)
    names = header.strip().split(",")
    assert _rows_if_clean("".join([header] + lines).encode(), names, columns, True) == 200
    assert _rows_if_clean("".join([header] + lines).replace("\n", "\r\n").encode(), names, columns, True) == 200
    # A repeated header is checked without the schema's types, which would catch it as a non-number first.
    column, value, typed = (names[0], names[0], False) if value == REPEATED_HEADER else ("trip_seconds", value, True)
    changed = edit_column([header] + lines, column, lambda cell, chance: value if chance.random() < 0.01 else cell)
    assert _rows_if_clean("".join(changed).encode(), names, columns, typed) is None


@pytest.mark.parametrize("layout", ["blank line", "quoted line break", "short line", "no rows"])
def test_arrow_pass_leaves_odd_layouts_to_the_line_checks(layout):
    header, lines = rows(4, count=20)
    broken_quotes = lines[0].replace(",Cash,", ',"Ca\nsh",').replace(",Credit Card,", ',"Credit\nCard",')
    changed = {"blank line": lines[:5] + ["\n"] + lines[5:],
               "quoted line break": [broken_quotes] + lines[1:],
               "short line": lines[:-1] + [lines[-1][:20] + "\n"],
               "no rows": []}[layout]
    names = header.strip().split(",")
    assert _rows_if_clean("".join([header] + changed).encode(), names, schema_columns(CURATED), True) is None


def test_statistics_of_a_file_with_a_byte_order_mark_equal_those_without(tmp_path):
    lines = shipped_lines(4)[:301]
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_text("".join(lines))
    marked.write_bytes(b"\xef\xbb\xbf" + "".join(lines).encode())
    without, with_mark = csv_statistics([str(plain)], CURATED), csv_statistics([str(marked)], CURATED)
    assert sorted(f.path.step[0] for f in with_mark.features) == sorted(f.path.step[0] for f in without.features)
    first = next(f for f in with_mark.features if f.path.step[0] == "pickup_community_area")
    same = next(f for f in without.features if f.path.step[0] == "pickup_community_area")
    assert first.num_stats.mean == pytest.approx(same.num_stats.mean) and first.type == same.type
