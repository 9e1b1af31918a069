"""DataGate's policy, called as the component's own Python function on real artifacts (no pipeline run)."""
from __future__ import annotations

import logging
import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from pipeline import artifacts
from pipeline.data_validation import drift
from pipeline.data_validation.data_gate import DataGate, DataGateError
from pipeline.data_validation.findings import STOP, WARN

# The function @component wrapped: what the component's executor calls with the resolved artifacts.
gate = DataGate.EXECUTOR_SPEC.executor_class._FUNCTION


@pytest.fixture
def inputs(tmp_path):
    """Artifacts as DataGate gets them: ExampleValidator's anomalies, DriftSkewCheck's distances, the report."""
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = str(tmp_path / "ExampleValidator" / "anomalies" / "7")
    anomalies.split_names = artifact_utils.encode_split_names([artifacts.TRAIN_SPLIT, artifacts.EVAL_SPLIT])
    distances = artifacts.DataDistances()
    distances.uri = str(tmp_path / "DriftSkewCheck" / "distances" / "8")
    report = artifacts.DataReport()
    report.uri = str(tmp_path / "DataReportGen" / "report" / "9")
    for split in (artifacts.TRAIN_SPLIT, artifacts.EVAL_SPLIT):
        write_anomalies(anomalies, split, anomalies_pb2.Anomalies())
    os.makedirs(distances.uri)
    write_distances(distances, [])
    return anomalies, distances, report


def write_anomalies(anomalies, split: str, report: anomalies_pb2.Anomalies) -> None:
    folder = artifact_utils.get_split_uri([anomalies], split)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, artifacts.ANOMALIES_FILE), "wb") as out:
        out.write(report.SerializeToString())


def write_distances(distances, measured: list[drift.Distance]) -> None:
    drift.write_distances(os.path.join(distances.uri, artifacts.DISTANCES_FILE), measured, notes=[])


def company_anomaly() -> anomalies_pb2.Anomalies:
    report = anomalies_pb2.Anomalies()
    report.anomaly_info["company"].short_description = "Unexpected string values"
    report.anomaly_info["company"].description = "Examples contain values missing from the schema: Acme Cabs."
    return report


DRIFT = drift.Distance("drift", "payment_type", drift.L_INFINITY, 0.31, 0.1, "span 5", "span 4", exceeded=True)
SKEW = drift.Distance("skew", "trip_miles", drift.JENSEN_SHANNON, 0.05, 0.1, "serving data", "span 5",
                      exceeded=False)
VOLUME = drift.Distance("volume", "", drift.ROW_RATIO, 0.25, 0.5, "span 5", "span 4", exceeded=True, max_ratio=2.0)


def test_clean_data_passes_with_no_findings(inputs):
    anomalies, distances, report = inputs
    write_distances(distances, [SKEW])  # measured, but within its threshold
    assert gate(anomalies, distances, report) == {"stopping_findings": 0, "warnings": 0}


def test_a_stopping_finding_stops_the_run_listing_every_finding_and_the_data_report(inputs):
    anomalies, distances, report = inputs
    write_anomalies(anomalies, artifacts.EVAL_SPLIT, company_anomaly())
    write_distances(distances, [DRIFT, SKEW, VOLUME])
    with pytest.raises(DataGateError) as stopped:
        gate(anomalies, distances, report, on_drift=WARN)
    message = str(stopped.value)
    assert message.startswith("the data gate stopped the run: 1 finding(s) the policy stops on.")
    assert ("[stop] schema: feature 'company': Unexpected string values: Examples contain values missing from the "
            "schema: Acme Cabs., split eval") in message
    # Warnings are listed too: the user sees everything that was found.
    assert "[warn] drift: feature 'payment_type': L-infinity = 0.31 (threshold <= 0.1), span 5 vs span 4" in message
    assert ("[warn] volume: dataset: row count ratio to the previous span = 0.25 (threshold >= 0.5 and <= 2.0), "
            "span 5 vs span 4") in message
    assert "trip_miles" not in message  # within its threshold
    assert f"Data report: {os.path.join(report.uri, artifacts.REPORT_FILE)}" in message
    assert "on_schema_anomaly / on_drift / on_skew / on_time to warn" in message


def test_the_stop_count_counts_only_findings_the_policy_stops_on(inputs):
    anomalies, distances, report = inputs
    write_distances(distances, [DRIFT, VOLUME])
    with pytest.raises(DataGateError, match=r"stopped the run: 2 finding\(s\)"):
        gate(anomalies, distances, report, on_schema_anomaly=WARN, on_drift=STOP, on_skew=WARN)


def test_only_warnings_let_the_run_go_on_and_are_counted_and_logged(inputs, caplog):
    anomalies, distances, report = inputs
    write_anomalies(anomalies, artifacts.TRAIN_SPLIT, company_anomaly())
    write_distances(distances, [DRIFT, VOLUME])
    with caplog.at_level(logging.WARNING):
        result = gate(anomalies, distances, report, on_schema_anomaly=WARN, on_drift=WARN, on_skew=STOP)
    assert result == {"stopping_findings": 0, "warnings": 3}
    logged = [record.getMessage() for record in caplog.records]
    assert "data gate: [warn] drift: feature 'payment_type': L-infinity = 0.31 (threshold <= 0.1), " \
           "span 5 vs span 4" in logged
    assert sum(message.startswith("data gate: [warn]") for message in logged) == 3


def test_by_default_every_kind_of_finding_stops_the_run(inputs):
    anomalies, distances, report = inputs
    skewed = drift.Distance("skew", "trip_miles", drift.JENSEN_SHANNON, 0.4, 0.1, "serving data", "span 5",
                            exceeded=True)
    write_distances(distances, [skewed])
    with pytest.raises(DataGateError, match="\\[stop\\] skew: feature 'trip_miles'"):
        gate(anomalies, distances, report)
