"""Span rules: each rule measured and judged by TFDV's custom validations, on statistics like SpanStatisticsGen's."""
from __future__ import annotations

import os

import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

from pipeline import artifacts
from pipeline.data_validation import drift, findings, span_rules
from pipeline.data_validation.row_measures import AGREEMENT, DERIVED, DUPLICATES, TIMESTAMP
from pipeline.data_validation.statistics_io import load_schema
from tests.conftest import REPO
from tests.unit.pipeline.data_validation.test_findings import STOP_ALL, anomalies, anomalies_artifact

SCHEMA = load_schema(str(REPO / "schema" / "schema.pbtxt"))
APRIL_2015, DECEMBER_2016 = 1427870700, 1483116300
NOW = 1796256000  # 2026-12-03 00:00 UTC


def statistics(earliest: float | None = APRIL_2015, latest: float | None = DECEMBER_2016,
               agreement: dict[str, float] | None = None,
               repeated: float | None = 0.0) -> statistics_pb2.DatasetFeatureStatistics:
    result = statistics_pb2.DatasetFeatureStatistics(num_examples=1000)
    timestamp = result.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
    timestamp.path.step.append(TIMESTAMP)
    if earliest is not None:
        timestamp.num_stats.min, timestamp.num_stats.max = earliest, latest
        timestamp.num_stats.common_stats.num_non_missing = 1000
    if repeated is not None:
        timestamp.custom_stats.add(name=DUPLICATES, num=repeated)
    for name in DERIVED:
        feature = result.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
        feature.path.step.append(name)
        share = (agreement or {}).get(name, 1.0)
        if share is not None:
            feature.custom_stats.add(name=AGREEMENT, num=share)
    return result


def check(current, previous=None, **thresholds):
    settings = {"tolerance_hours": 24.0, "min_agreement": 0.99, "max_duplicates": 0.01, **thresholds}
    results = span_rules.check(current, previous, SCHEMA, NOW, settings["tolerance_hours"],
                               settings["min_agreement"], settings["max_duplicates"], "span 5",
                               "span 4" if previous is not None else "")
    return {(r.rule, r.feature): r for r in results}


EARLIEST = (span_rules.EARLIEST, TIMESTAMP)
LATEST = ("latest trip start", TIMESTAMP)
ORDER = ("latest trip start vs the previous span's earliest", TIMESTAMP)
REPEATED = ("share of rows repeating an earlier row", "")


def agreement_of(name: str) -> tuple[str, str]:
    return ("share of rows agreeing with trip_start_timestamp (UTC)", name)


def test_a_good_span_passes_every_rule_and_each_is_recorded_with_its_value():
    results = check(statistics(), previous=statistics(earliest=APRIL_2015 - 86400 * 90, latest=APRIL_2015))
    assert [r for r in results.values() if r.failed] == []
    assert len(results) == 7 and all(r.value is not None for r in results.values())
    assert results[LATEST].shown == "2016-12-30 16:45 UTC"
    assert results[LATEST].threshold == "<= 2026-12-04 00:00 UTC (the run's time + time_tolerance_hours 24)"
    assert results[EARLIEST].threshold.startswith(">= 2012-11-01 00:00 UTC (the schema's int_domain min")
    assert results[ORDER].where == "span 5 vs span 4"


def test_trips_in_the_year_2100_fail_the_clock_rule_only():
    results = check(statistics(earliest=4102444800, latest=4133980800))
    assert [key for key, r in results.items() if r.failed] == [LATEST]
    assert results[LATEST].shown == "2101-01-01 00:00 UTC" and results[LATEST].kind == "time"


def test_the_clock_rule_allows_the_tolerance_and_no_more():
    assert not check(statistics(latest=NOW + 23 * 3600))[LATEST].failed
    assert check(statistics(latest=NOW + 25 * 3600))[LATEST].failed
    assert check(statistics(latest=NOW + 3600), tolerance_hours=0)[LATEST].failed


def test_timestamps_in_milliseconds_fail_the_clock_rule_with_a_readable_year():
    result = check(statistics(earliest=APRIL_2015 * 1000, latest=DECEMBER_2016 * 1000))[LATEST]
    assert result.failed and result.shown.startswith("48968-")


def test_trips_before_the_datas_start_fail_the_start_rule():
    results = check(statistics(earliest=631152000, latest=DECEMBER_2016))  # 1990-01-01
    assert [key for key, r in results.items() if r.failed] == [EARLIEST]
    assert results[EARLIEST].shown == "1990-01-01 00:00 UTC"


def test_a_span_wholly_before_the_previous_one_fails_the_order_rule_and_an_overlapping_one_passes():
    previous = statistics(earliest=APRIL_2015, latest=DECEMBER_2016)
    before = check(statistics(earliest=APRIL_2015 - 86400 * 400, latest=APRIL_2015 - 60), previous)[ORDER]
    assert before.failed and before.threshold == ">= 2015-04-01 06:45 UTC (the earliest in span 4)"
    assert not check(statistics(earliest=APRIL_2015 - 86400 * 400, latest=APRIL_2015 + 60), previous)[ORDER].failed


def test_without_a_previous_span_the_order_rule_is_not_measured_and_stops_nothing():
    result = check(statistics())[ORDER]
    assert (result.value, result.shown, result.failed) == (None, "not measured", False)


@pytest.mark.parametrize("name", DERIVED)
def test_a_derived_column_below_the_agreement_share_fails_its_rule(name):
    results = check(statistics(agreement={name: 0.95}))
    assert [key for key, r in results.items() if r.failed] == [agreement_of(name)]
    assert results[agreement_of(name)].shown == "95.00%"
    assert not check(statistics(agreement={name: 0.95}), min_agreement=0.9)[agreement_of(name)].failed


def test_repeated_rows_over_their_share_fail_as_a_schema_kind_rule():
    result = check(statistics(repeated=0.5))[REPEATED]
    assert result.failed and result.kind == "schema" and result.shown == "50.00%"
    assert not check(statistics(repeated=0.005))[REPEATED].failed


def test_statistics_without_row_measures_leave_those_rules_unmeasured():
    results = check(statistics(agreement=dict.fromkeys(DERIVED), repeated=None))
    unmeasured = [key for key, r in results.items() if r.value is None]
    assert unmeasured == [ORDER] + [agreement_of(name) for name in DERIVED] + [REPEATED]
    assert not any(r.failed for r in results.values())


def _distances(tmp_path, results) -> artifacts.DataDistances:
    distances = artifacts.DataDistances()
    distances.uri = str(tmp_path / "distances")
    os.makedirs(distances.uri)
    drift.write_distances(os.path.join(distances.uri, artifacts.DISTANCES_FILE), [], notes=[])
    span_rules.write_results(os.path.join(distances.uri, span_rules.RULES_FILE), results)
    return distances


def test_failed_rules_are_findings_under_the_on_time_policy_with_readable_values(tmp_path):
    results = list(check(statistics(earliest=4102444800, latest=4133980800, repeated=0.5)).values())
    found = findings.collect(anomalies_artifact(tmp_path / "anomalies", {"train": anomalies()}),
                             _distances(tmp_path, results), {**STOP_ALL, "on_time": findings.WARN})
    assert [f.line() for f in found] == [
        "[warn] time: feature 'trip_start_timestamp': latest trip start = 2101-01-01 00:00 UTC (threshold "
        "<= 2026-12-04 00:00 UTC (the run's time + time_tolerance_hours 24)), span 5; check the export's time "
        "column (Unix seconds, UTC): trips cannot start in the future",
        "[stop] schema: dataset: share of rows repeating an earlier row = 50.00% (threshold <= 0.01 "
        "(max_duplicate_rows)), span 5; the same trips twice (an export appended to itself?): remove the "
        "repeated rows"]


def test_example_validators_anomaly_on_the_datas_start_is_left_to_the_start_rule(tmp_path):
    out_of_range = {TIMESTAMP: ("Out-of-range values", "Unexpectedly small value: 631152000.")}
    early = list(check(statistics(earliest=631152000)).values())
    found = findings.collect(anomalies_artifact(tmp_path / "early", {"train": anomalies(out_of_range)}),
                             _distances(tmp_path / "a", early), STOP_ALL)
    assert [(f.kind, f.what) for f in found] == [("time", span_rules.EARLIEST)]
    # The newest span starts in time but ExampleValidator saw an earlier one out of range: kept as it is.
    found = findings.collect(anomalies_artifact(tmp_path / "older", {"train": anomalies(out_of_range)}),
                             _distances(tmp_path / "b", list(check(statistics()).values())), STOP_ALL)
    assert [(f.kind, f.feature) for f in found] == [("schema", TIMESTAMP)]


def test_results_read_back_as_written_and_none_from_an_older_check(tmp_path):
    results = list(check(statistics()).values())
    distances = _distances(tmp_path, results)
    assert span_rules.read_results(os.path.join(distances.uri, span_rules.RULES_FILE)) == results
    assert span_rules.read_results(str(tmp_path / "missing" / span_rules.RULES_FILE)) == []
