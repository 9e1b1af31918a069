"""Rules on the newest span that the schema's domains and comparators cannot state.

Time validity (finding kind "time", policy on_time):
- start: the span's earliest trip start is not before the data's known start, the
  int_domain min of trip_start_timestamp in schema/schema.pbtxt;
- clock: its latest trip start is not after the run's time plus `time_tolerance_hours`
  (config). A schema domain is fixed text, so the clock's bound is set here, per run;
- order: it does not lie wholly before the previous span (the one DriftSkewCheck compares
  with): its latest trip start is not before that span's earliest;
- agreement: trip_start_hour, trip_start_day and trip_start_month each equal the
  timestamp's, in UTC, on at least `min_time_agreement` of the rows (row_measures.py).
Repeated rows (kind "schema", policy on_schema_anomaly): at most `max_duplicate_rows`
of the rows repeat an earlier row in full (an export appended to itself).

Each rule is a SQL predicate on the span's statistics that TFDV's custom validations
(CustomValidationConfig, TFDV 1.16) evaluate; the measured value shown beside it is read
from the same statistics. Every rule is recorded for every span, passed or not; a rule
whose value the statistics lack (no previous span; statistics from before the row
measures) is recorded as not measured and stops nothing.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import tensorflow as tf
from tensorflow_data_validation.anomalies.proto import custom_validation_config_pb2
from tensorflow_data_validation.api import validation_api
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.utils import io_utils

from pipeline.data_validation.row_measures import AGREEMENT, DERIVED, DUPLICATES, TIMESTAMP, custom_stat

RULES_FILE = "span_rules.json"
TIME, ROWS = "time", "schema"
EARLIEST = "earliest trip start"
HOUR = 3600


@dataclasses.dataclass
class RuleResult:
    kind: str  # TIME or ROWS: the finding kind, hence the policy, when the rule fails
    rule: str  # what is measured, e.g. "latest trip start"
    feature: str
    value: float | None  # None: not measured
    shown: str  # the measured value as a reader wants it (a UTC time for a timestamp)
    threshold: str
    where: str  # "span 5", "span 5 vs span 4"
    failed: bool
    advice: str = ""  # what to do when it fails


@dataclasses.dataclass
class _Rule:
    result: RuleResult
    sql: str  # the predicate that holds on good data ("" when not measured)
    pair: bool = False  # compares with the previous span (feature_test / feature_base)


def utc_time(seconds: float) -> str:
    """A Unix time as 'YYYY-MM-DD HH:MM UTC'; numpy's calendar also takes years past 9999."""
    return np.datetime_as_string(np.datetime64(int(seconds), "s"), unit="m").replace("T", " ") + " UTC"


def data_start(schema: schema_pb2.Schema) -> int | None:
    """The data's known start: the int_domain min of trip_start_timestamp, if the schema declares one."""
    for feature in schema.feature:
        if feature.name == TIMESTAMP and feature.HasField("int_domain") and feature.int_domain.HasField("min"):
            return feature.int_domain.min
    return None


def _numbers(statistics: statistics_pb2.DatasetFeatureStatistics, feature: str):
    for candidate in statistics.features:
        if (".".join(candidate.path.step) or candidate.name) == feature and candidate.HasField("num_stats"):
            if candidate.num_stats.common_stats.num_non_missing:
                return candidate.num_stats
    return None


def _rules(current, previous, schema, now: float, tolerance_hours: float, min_agreement: float,
           max_duplicates: float, current_name: str, previous_name: str) -> list[_Rule]:
    rules = []
    times = _numbers(current, TIMESTAMP)
    start = data_start(schema)
    fix_times = "check the export's time column (Unix seconds, UTC)"

    def add(kind, rule, feature, value, shown, threshold, sql, where=current_name, advice="", pair=False):
        measured = value is not None and bool(sql)
        rules.append(_Rule(RuleResult(kind, rule, feature, value if measured else None,
                                      shown if measured else "not measured", threshold, where, False, advice),
                           sql if measured else "", pair))

    if start is not None:
        add(TIME, EARLIEST, TIMESTAMP, times and times.min, times and utc_time(times.min),
            f">= {utc_time(start)} (the schema's int_domain min: the data's known start)",
            f"feature.num_stats.min >= {start}", advice=fix_times)
    latest_allowed = int(now + tolerance_hours * HOUR)
    add(TIME, "latest trip start", TIMESTAMP, times and times.max, times and utc_time(times.max),
        f"<= {utc_time(latest_allowed)} (the run's time + time_tolerance_hours {tolerance_hours:g})",
        f"feature.num_stats.max <= {latest_allowed}", advice=f"{fix_times}: trips cannot start in the future")
    before = _numbers(previous, TIMESTAMP) if previous is not None else None
    earliest_before = (f">= {utc_time(before.min)} (the earliest in {previous_name})" if before
                       else ">= the previous span's earliest trip start")
    add(TIME, "latest trip start vs the previous span's earliest", TIMESTAMP, times and before and times.max,
        times and before and utc_time(times.max), earliest_before,
        "feature_test.num_stats.max >= feature_base.num_stats.min", pair=True,
        where=f"{current_name} vs {previous_name}" if previous_name else current_name,
        advice="a new span lies wholly before the one it follows: check the span's number and its time column")
    for name in DERIVED:
        share = custom_stat(current, name, AGREEMENT)
        add(TIME, "share of rows agreeing with trip_start_timestamp (UTC)", name, share,
            None if share is None else f"{share:.2%}", f">= {min_agreement:g} (min_time_agreement)",
            f"(SELECT c.num FROM UNNEST(feature.custom_stats) AS c WHERE c.name = '{AGREEMENT}') >= {min_agreement}",
            advice=f"derive {name} from trip_start_timestamp in UTC"
                   + (" (day of week, 1 = Sunday)" if name == "trip_start_day" else ""))
    repeated = custom_stat(current, TIMESTAMP, DUPLICATES)
    add(ROWS, "share of rows repeating an earlier row", "", repeated,
        None if repeated is None else f"{repeated:.2%}", f"<= {max_duplicates:g} (max_duplicate_rows)",
        f"(SELECT c.num FROM UNNEST(feature.custom_stats) AS c WHERE c.name = '{DUPLICATES}') <= {max_duplicates}",
        advice="the same trips twice (an export appended to itself?): remove the repeated rows")
    return rules


def check(current: statistics_pb2.DatasetFeatureStatistics, previous: statistics_pb2.DatasetFeatureStatistics | None,
          schema: schema_pb2.Schema, now: float, tolerance_hours: float, min_agreement: float,
          max_duplicates: float, current_name: str, previous_name: str = "") -> list[RuleResult]:
    """Every rule on the span, measured, with TFDV's verdict; `previous` is None when there is no previous span."""
    rules = _rules(current, previous, schema, now, tolerance_hours, min_agreement, max_duplicates,
                   current_name, previous_name)
    config = custom_validation_config_pb2.CustomValidationConfig()
    for number, rule in enumerate(rules):
        if not rule.sql:
            continue
        # The rule's number as the description: TFDV reports it as the anomaly's short description.
        validation = custom_validation_config_pb2.Validation(
            sql_expression=rule.sql, severity=anomalies_pb2.AnomalyInfo.ERROR, description=str(number))
        # The duplicates share is a custom statistic of the timestamp (row_measures.py).
        feature = rule.result.feature or TIMESTAMP
        if rule.pair:
            pair = config.feature_pair_validations.add(validations=[validation])
            pair.feature_test_path.step.append(feature)
            pair.feature_base_path.step.append(feature)
        else:
            config.feature_validations.add(validations=[validation]).feature_path.step.append(feature)
    failed = set()
    if config.feature_validations or config.feature_pair_validations:
        def listing(statistics):
            return statistics_pb2.DatasetFeatureStatisticsList(datasets=[statistics])

        anomalies = validation_api.custom_validate_statistics(
            listing(current), config, listing(previous) if previous is not None else None)
        for info in anomalies.anomaly_info.values():
            failed.update(int(reason.short_description) for reason in info.reason
                          if reason.type == anomalies_pb2.AnomalyInfo.CUSTOM_VALIDATION)
    return [dataclasses.replace(rule.result, failed=number in failed) for number, rule in enumerate(rules)]


def write_results(path: str, results: list[RuleResult]) -> None:
    io_utils.write_string_file(path, json.dumps([dataclasses.asdict(r) for r in results], indent=1))


def read_results(path: str) -> list[RuleResult]:
    """The recorded results; none for a DriftSkewCheck output written before these rules existed."""
    if not tf.io.gfile.exists(path):
        return []
    return [RuleResult(**item) for item in json.loads(io_utils.read_string_file(path))]
