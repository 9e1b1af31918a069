"""DataGate: the component that stops a run on bad or shifted data.

ExampleValidator only records anomalies, and nothing in TFX compares a span with the
previous one or with serving data; TFX lets the run go on to train either way. This gate
sits between the data checks and Transform: it collects the schema anomalies, the
drift, volume and skew findings and the span rules' (time validity, repeated rows),
applies the config's policy (stop or warn per kind),
and fails the run on any finding that stops it, listing each one and pointing to the
data report, so nothing downstream (Transform, Trainer, Pusher) runs.
"""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
import logging
import os
from typing import TypedDict

from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from pipeline.artifacts import REPORT_FILE, DataDistances, DataReport
from pipeline.data_validation import findings


class DataGateError(RuntimeError):
    """The run was stopped because of what the data checks found."""


class GateResult(TypedDict):
    stopping_findings: int
    warnings: int


@component
def DataGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
             distances: InputArtifact[DataDistances],
             report: InputArtifact[DataReport],
             on_schema_anomaly: Parameter[str] = findings.STOP,
             on_drift: Parameter[str] = findings.STOP,
             on_skew: Parameter[str] = findings.STOP,
             on_time: Parameter[str] = findings.STOP) -> GateResult:
    policy = {"on_schema_anomaly": on_schema_anomaly, "on_drift": on_drift, "on_skew": on_skew, "on_time": on_time}
    found = findings.collect(anomalies, distances, policy)
    stopping = [f for f in found if f.action == findings.STOP]
    report_path = os.path.join(report.uri, REPORT_FILE)
    for finding in found:
        if finding.action == findings.WARN:
            logging.warning("data gate: %s", finding.line())
    if stopping:
        raise DataGateError(
            f"the data gate stopped the run: {len(stopping)} finding(s) the policy stops on.\n  "
            + "\n  ".join(f.line() for f in found) +
            f"\nData report: {report_path}\nFix the data; or, if the change is intended, update "
            "schema/schema.pbtxt (domains, comparator thresholds; see schema/README.md) or the span rules' "
            "thresholds in the config (time_tolerance_hours, min_time_agreement, max_duplicate_rows), or set "
            "on_schema_anomaly / on_drift / on_skew / on_time to warn, and run again.")
    return {"stopping_findings": 0, "warnings": len(found)}
