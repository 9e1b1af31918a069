"""Serving drift with the real TFDV: logged requests against training statistics, by the schema's skew comparators,
as the monitor's report, CLI line and Prometheus series show it."""
from __future__ import annotations

import csv
import html
import json
import pathlib

import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families

from data import synthetic
from pipeline.data_validation.statistics_io import csv_statistics, load_schema
from pipeline.monitoring import monitor_report, serving_drift
from pipeline.monitoring.triggers import QUIET, Decision
from serving.clients.request_encoding import feature_types_from_schema, serialized_examples

pytestmark = [pytest.mark.timeout(300)]

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = str(REPO / "schema" / "schema.pbtxt")
# Every feature the schema gives a skew comparator: the ones exported, no others.
SKEWED = {f.name: f for f in load_schema(SCHEMA).feature if f.HasField("skew_comparator")}


@pytest.fixture(scope="module")
def training_statistics(tmp_path_factory) -> str:
    """Train-split statistics as StatisticsGen writes them (a FeatureStats.pb), of 4,000 synthetic trips."""
    folder = tmp_path_factory.mktemp("training")
    frame = synthetic.generate(4000, seed=1)
    with open(folder / "data.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(frame.columns)
        writer.writerows(frame.itertuples(index=False))
    statistics = csv_statistics([str(folder / "data.csv")], load_schema(SCHEMA))
    from tensorflow_metadata.proto.v0 import statistics_pb2

    path = folder / "FeatureStats.pb"
    path.write_bytes(statistics_pb2.DatasetFeatureStatisticsList(datasets=[statistics]).SerializeToString())
    return str(path)


def _window(folder: pathlib.Path, rows: int, seed: int, **shift) -> tuple[str, int]:
    """A window's logged tf.Examples, encoded as the clients send them (every SERVING feature of the schema)."""
    frame = synthetic.generate(rows, seed=seed, **shift)
    path = folder / f"requests-{seed}.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in serialized_examples(frame.to_dict("records"), feature_types_from_schema(SCHEMA)):
            writer.write(example)
    return str(path), rows


def test_traffic_like_the_training_data_is_under_every_threshold(training_statistics, tmp_path):
    examples, rows = _window(tmp_path, 2000, seed=2)
    measured = serving_drift.measure(examples, rows, 1795439358, training_statistics, SCHEMA)
    assert {d.feature for d in measured.distances} == set(SKEWED)
    assert measured.over == []
    # The synthetic trips, like most of the city's, carry no pickup census tract: nothing to compare.
    assert {d.feature for d in measured.distances if d.value is None} == {"pickup_census_tract"}
    largest = measured.largest()
    assert measured.summary() == (
        f"serving drift: 0 of {len(SKEWED)} features over threshold (largest: {largest.feature} "
        f"{largest.value:.3f} <= {largest.threshold:g}); 1 not measurable (no values on one side); "
        "2000 logged rows against version 1795439358's training data")


def test_shifted_traffic_names_the_features_over_their_thresholds(training_statistics, tmp_path):
    # Every rider pays cash and fares triple: L-infinity on payment_type, Jensen-Shannon on fare.
    examples, rows = _window(tmp_path, 2000, seed=3, payment_mix={"Cash": 1.0}, fare_scale=3.0)
    measured = serving_drift.measure(examples, rows, 7, training_statistics, SCHEMA)
    over = {d.feature: d for d in measured.over}
    assert {"payment_type", "fare"} <= set(over), measured.summary()
    payment = over["payment_type"]
    assert payment.comparator == "L-infinity" and payment.threshold == pytest.approx(
        SKEWED["payment_type"].skew_comparator.infinity_norm.threshold)
    assert payment.value > 0.3  # card trips are about half of the training data and none of the window
    assert over["fare"].comparator == "Jensen-Shannon divergence"
    assert f"{len(measured.over)} of {len(SKEWED)} features over threshold" in measured.summary()


def test_report_and_prometheus_series_carry_each_value_and_threshold(training_statistics, tmp_path):
    examples, rows = _window(tmp_path, 1500, seed=4, fare_scale=3.0)
    measured = serving_drift.measure(examples, rows, 7, training_statistics, SCHEMA)
    data = monitor_report.report_data(
        pipeline_name="taxi-tips", window=(0.0, 3600.0), now=3600.0, decision=Decision(QUIET, [], []), versions=[],
        qualities=[], outcomes={"files": 0, "rows": 0, "duplicates": 0, "conflicting": 0, "unmatched": 0,
                                "newest_age_seconds": None},
        skipped={}, drift=measured.as_dict(), captured=None, min_examples=50)
    folder = tmp_path / "report"
    json_path, html_path = monitor_report.write_report(folder, data, 0.55)
    page = html_path.read_text()
    assert html.escape(measured.summary()) in page
    assert json.loads(json_path.read_text())["serving_drift"]["features"] == measured.as_dict()["features"]
    assert "<td>fare</td><td>Jensen-Shannon divergence</td>" in page

    prom = tmp_path / monitor_report.PROMETHEUS_FILE
    monitor_report.write_prometheus(prom, data, 50)
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    drift = {s.labels["feature"]: s.value for s in families["taxi_serving_feature_drift"].samples}
    thresholds = {s.labels["feature"]: s.value for s in families["taxi_serving_feature_drift_threshold"].samples}
    # A threshold for every feature with a comparator; a value only where one was measured.
    assert set(thresholds) == set(SKEWED) and set(drift) == set(SKEWED) - {"pickup_census_tract"}
    for distance in measured.measured:
        assert drift[distance.feature] == pytest.approx(distance.value)
        assert thresholds[distance.feature] == pytest.approx(distance.threshold)
    assert drift["fare"] > thresholds["fare"]
    assert all(s.labels["pipeline"] == "taxi-tips" for s in families["taxi_serving_feature_drift"].samples)


def test_a_pass_that_could_not_measure_says_why_and_exports_nothing(tmp_path):
    note = "no tf.Example request logged in the window"
    missing = serving_drift.not_measured(note)
    assert missing.summary() == f"serving drift: not measured ({note})"
    data = {"pipeline": "taxi-tips", "slices": [], "versions": [], "outcomes": {"newest_age_seconds": None},
            "decision": {"verdict": QUIET}, "generated_at": 1.0, "serving_drift": missing.as_dict()}
    prom = tmp_path / "live_quality.prom"
    monitor_report.write_prometheus(prom, data, 50)
    assert "taxi_serving_feature_drift{" not in prom.read_text()

