"""What the data checks report: finding lines, schema anomalies by split, distances over threshold, policy."""
from __future__ import annotations

import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from pipeline import artifacts
from pipeline.data_validation import drift, findings
from pipeline.data_validation.findings import STOP, WARN, Finding

STOP_ALL = {"on_schema_anomaly": STOP, "on_drift": STOP, "on_skew": STOP, "on_time": STOP}


def anomalies_artifact(root, by_split: dict[str, anomalies_pb2.Anomalies]) -> standard_artifacts.ExampleAnomalies:
    """An ExampleAnomalies artifact as ExampleValidator writes it: SchemaDiff.pb in each split folder."""
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(root)
    artifact.split_names = artifact_utils.encode_split_names(list(by_split))
    for split, report in by_split.items():
        folder = artifact_utils.get_split_uri([artifact], split)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, artifacts.ANOMALIES_FILE), "wb") as out:
            out.write(report.SerializeToString())
    return artifact


def anomalies(features: dict[str, tuple[str, str]] | None = None,
              dataset: tuple[str, str] | None = None) -> anomalies_pb2.Anomalies:
    report = anomalies_pb2.Anomalies()
    for name, (short, description) in (features or {}).items():
        report.anomaly_info[name].short_description = short
        report.anomaly_info[name].description = description
    if dataset:
        report.dataset_anomaly_info.short_description, report.dataset_anomaly_info.description = dataset
    return report


def distance(kind="drift", feature="company", value=0.3, threshold=0.2, exceeded=True, comparator=drift.L_INFINITY,
             max_ratio=None, current="span 5", reference="span 4") -> drift.Distance:
    return drift.Distance(kind, feature, comparator, value, threshold, current, reference, exceeded, max_ratio)


def test_line_of_a_feature_finding_shows_action_kind_feature_value_threshold_and_where():
    finding = Finding("drift", "company", drift.L_INFINITY, "span 5 vs span 4", 0.123456, "<= 0.1")
    assert finding.line() == "[stop] drift: feature 'company': L-infinity = 0.1235 (threshold <= 0.1), span 5 vs span 4"


def test_line_of_a_dataset_finding_without_a_value_says_dataset_and_leaves_out_the_measure():
    finding = Finding("schema", "", "Low num examples: too few", "split eval", action=WARN)
    assert finding.line() == "[warn] schema: dataset: Low num examples: too few, split eval"


def test_schema_findings_list_every_feature_anomaly_per_split_sorted_by_feature(tmp_path):
    artifact = anomalies_artifact(tmp_path, {
        "train": anomalies({"trip_miles": ("Out-of-range values", "Unexpectedly large value: 9000."),
                            "company": ("Unexpected string values", "Examples contain values missing from the "
                                        "schema: Acme Cabs.")}),
        "eval": anomalies({"fare": ("Missing column", "Column is completely missing")}),
    })
    lines = [f.line() for f in findings.schema_findings(artifact)]
    assert lines == [
        "[stop] schema: feature 'company': Unexpected string values: Examples contain values missing from the "
        "schema: Acme Cabs., split train",
        "[stop] schema: feature 'trip_miles': Out-of-range values: Unexpectedly large value: 9000., split train",
        "[stop] schema: feature 'fare': Missing column: Column is completely missing, split eval",
    ]


def test_schema_findings_include_a_dataset_anomaly(tmp_path):
    artifact = anomalies_artifact(tmp_path, {
        "train": anomalies(dataset=("Low num examples", "The number of examples is below 1000."))})
    [finding] = findings.schema_findings(artifact)
    assert (finding.kind, finding.feature, finding.where) == ("schema", "", "split train")
    assert finding.what == "Low num examples: The number of examples is below 1000."


def test_schema_findings_of_clean_splits_are_empty(tmp_path):
    artifact = anomalies_artifact(tmp_path, {"train": anomalies(), "eval": anomalies()})
    assert findings.schema_findings(artifact) == []


def test_distance_findings_keep_only_measures_over_their_threshold():
    measured = [distance(feature="company", value=0.3, exceeded=True),
                distance(feature="payment_type", value=0.01, exceeded=False),
                distance(feature="trip_miles", value=None, exceeded=False, comparator=drift.JENSEN_SHANNON)]
    [finding] = findings.distance_findings(measured)
    assert finding.line() == "[stop] drift: feature 'company': L-infinity = 0.3 (threshold <= 0.2), span 5 vs span 4"


def test_skew_finding_names_the_serving_data_it_was_measured_on():
    measured = [distance(kind="skew", feature="trip_miles", comparator=drift.JENSEN_SHANNON, value=0.25,
                         threshold=0.1, current="serving data", reference="span 5 train")]
    [finding] = findings.distance_findings(measured)
    assert finding.line() == ("[stop] skew: feature 'trip_miles': Jensen-Shannon divergence = 0.25 "
                              "(threshold <= 0.1), serving data vs span 5 train")


def test_volume_finding_is_about_the_dataset_and_shows_both_ratio_limits():
    measured = [distance(kind="volume", feature="", comparator=drift.ROW_RATIO, value=0.2, threshold=0.5,
                         max_ratio=2.0)]
    [finding] = findings.distance_findings(measured)
    assert finding.line() == ("[stop] volume: dataset: row count ratio to the previous span = 0.2 "
                              "(threshold >= 0.5 and <= 2.0), span 5 vs span 4")


def test_volume_finding_without_an_upper_limit_shows_only_the_lower_one():
    [finding] = findings.distance_findings([distance(kind="volume", feature="", comparator=drift.ROW_RATIO,
                                                     value=0.2, threshold=0.5)])
    assert finding.threshold == ">= 0.5"


@pytest.mark.parametrize("kind, setting", [("schema", "on_schema_anomaly"), ("drift", "on_drift"),
                                           ("volume", "on_drift"), ("skew", "on_skew"), ("time", "on_time")])
def test_policy_setting_of_each_kind_decides_its_action(kind, setting):
    policy = {**STOP_ALL, setting: WARN}
    others = [k for k in findings.POLICY_KINDS if findings.POLICY_KINDS[k] != setting]
    found = findings.apply_policy([Finding(k, "", "x", "here") for k in [kind, *others]], policy)
    assert {f.kind: f.action for f in found} == {kind: WARN, **{k: STOP for k in others}}


def test_apply_policy_leaves_the_findings_it_was_given_unchanged():
    original = Finding("drift", "company", "x", "here", action=STOP)
    [changed] = findings.apply_policy([original], {**STOP_ALL, "on_drift": WARN})
    assert (original.action, changed.action) == (STOP, WARN)
    assert changed.line() == "[warn] drift: feature 'company': x, here"


def test_collect_reads_both_artifacts_and_applies_the_policy(tmp_path):
    anomalies_out = anomalies_artifact(tmp_path / "anomalies", {
        "train": anomalies({"company": ("Unexpected string values", "Acme Cabs")})})
    distances = artifacts.DataDistances()
    distances.uri = str(tmp_path / "distances")
    os.makedirs(distances.uri)
    drift.write_distances(os.path.join(distances.uri, artifacts.DISTANCES_FILE),
                          [distance(feature="payment_type", value=0.4),
                           distance(kind="skew", feature="fare", exceeded=False)], notes=["measured"])
    found = findings.collect(anomalies_out, distances, {**STOP_ALL, "on_drift": WARN})
    assert [(f.kind, f.feature, f.action) for f in found] == [("schema", "company", STOP),
                                                              ("drift", "payment_type", WARN)]
