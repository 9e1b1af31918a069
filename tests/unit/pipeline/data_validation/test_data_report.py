"""The data report's span rules: every rule with its measured value, bound and status."""
from __future__ import annotations

import re

from tensorflow_metadata.proto.v0 import statistics_pb2

from pipeline.data_validation import findings
from pipeline.data_validation.data_report import render
from pipeline.data_validation.span_rules import RuleResult


def _rules() -> list[RuleResult]:
    return [
        RuleResult("time", "latest trip start", "trip_start_timestamp", 4133980800.0, "2101-01-01 00:00 UTC",
                   "<= 2026-12-04 00:00 UTC (the run's time + time_tolerance_hours 24)", "span 5", True),
        RuleResult("time", "latest trip start vs the previous span's earliest", "trip_start_timestamp", None,
                   "not measured", ">= the previous span's earliest trip start", "span 5", False),
        RuleResult("schema", "share of rows repeating an earlier row", "", 0.0, "0.00%",
                   "<= 0.01 (max_duplicate_rows)", "span 5", False),
    ]


def test_report_lists_every_span_rule_with_value_threshold_and_status():
    rules = _rules()
    found = findings.rule_findings(rules)
    page = render(statistics_pb2.DatasetFeatureStatistics(num_examples=10),
                  statistics_pb2.DatasetFeatureStatistics(num_examples=10), "span 5", found, [], [], rules, [])
    table = re.search(r'<table id="span-rules">.*?</table>', page, re.S).group(0)
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr class=.*?</tr>", table)]
    assert [(row[2], row[3], row[5]) for row in cells] == [
        ("latest trip start", "2101-01-01 00:00 UTC", "FAILED"),
        ("latest trip start vs the previous span&#x27;s earliest", "not measured", "not measured"),
        ("share of rows repeating an earlier row", "0.00%", "ok")]
    assert "The gate stops this run: 1 finding(s)." in page
    # The finding shows the time as a date, not as a number of seconds.
    assert "<td>2101-01-01 00:00 UTC</td><td>&lt;= 2026-12-04 00:00 UTC" in page


def test_report_of_statistics_checked_before_the_span_rules_says_so():
    page = render(statistics_pb2.DatasetFeatureStatistics(), statistics_pb2.DatasetFeatureStatistics(), "span 2",
                  [], [], [], [], [])
    assert '<p id="span-rules">Not checked' in page
