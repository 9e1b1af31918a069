"""What the data checks found, and what the gate policy does with each finding.

Schema anomalies come from ExampleValidator; drift, volume and skew from the distances
DriftSkewCheck recorded, time validity and repeated rows from the span rules it checked
(span_rules.py). The policy (pipeline config: on_schema_anomaly, on_drift, on_skew,
on_time) says for each kind whether it stops the run or only warns.
"""
from __future__ import annotations

import dataclasses
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from pipeline import artifacts
from pipeline.data_validation import drift, row_measures, span_rules

STOP, WARN = "stop", "warn"
POLICY_KINDS = {"schema": "on_schema_anomaly", "drift": "on_drift", "volume": "on_drift", "skew": "on_skew",
                "time": "on_time"}


@dataclasses.dataclass
class Finding:
    kind: str  # schema, drift, volume, skew or time
    feature: str  # "" for the dataset as a whole
    what: str
    where: str  # "split train", "span 5 vs span 4", ...
    value: float | None = None
    threshold: str = ""
    action: str = STOP
    shown: str = ""  # the value as a reader wants it, when a number says little (a time)
    advice: str = ""

    def line(self) -> str:
        subject = f"feature '{self.feature}'" if self.feature else "dataset"
        value = self.shown or (f"{self.value:.4g}" if self.value is not None else "")
        measured = f" = {value} (threshold {self.threshold})" if value else ""
        advice = f"; {self.advice}" if self.advice else ""
        return f"[{self.action}] {self.kind}: {subject}: {self.what}{measured}, {self.where}{advice}"


def schema_findings(anomalies) -> list[Finding]:
    """One finding per anomaly ExampleValidator recorded, by split."""
    findings = []
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), artifacts.ANOMALIES_FILE)
        report = anomalies_pb2.Anomalies()
        report.ParseFromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(report.anomaly_info.items()):
            findings.append(Finding("schema", feature, f"{info.short_description}: {info.description}",
                                    f"split {split}"))
        if report.HasField("dataset_anomaly_info"):
            info = report.dataset_anomaly_info
            findings.append(Finding("schema", "", f"{info.short_description}: {info.description}", f"split {split}"))
    return findings


def distance_findings(distances: list[drift.Distance]) -> list[Finding]:
    """One finding per measure over its threshold."""
    findings = []
    for d in distances:
        if not d.exceeded:
            continue
        where = f"{d.current} vs {d.reference}"
        if d.kind == "volume":
            limits = f">= {d.threshold}" + (f" and <= {d.max_ratio}" if d.max_ratio is not None else "")
            findings.append(Finding("volume", "", f"{d.comparator} to the previous span", where, d.value, limits))
        else:
            findings.append(Finding(d.kind, d.feature, d.comparator, where, d.value, f"<= {d.threshold}"))
    return findings


def rule_findings(results: list[span_rules.RuleResult]) -> list[Finding]:
    """One finding per span rule that failed."""
    return [Finding(r.kind, r.feature, r.rule, r.where, r.value, r.threshold, shown=r.shown, advice=r.advice)
            for r in results if r.failed]


def _is_start_bound(finding: Finding, results: list[span_rules.RuleResult]) -> bool:
    """ExampleValidator's out-of-range anomaly of the timestamp: the span rule on the data's start
    (the same int_domain min) reports it already, with the earliest time and the bound."""
    return (finding.feature == row_measures.TIMESTAMP and "Out-of-range values" in finding.what
            and any(r.rule == span_rules.EARLIEST and r.failed for r in results))


def collect(anomalies, distances, policy: dict[str, str]) -> list[Finding]:
    """Every finding of a run from ExampleValidator's and DriftSkewCheck's artifacts, with its action."""
    measured, _ = drift.read_distances(os.path.join(distances.uri, artifacts.DISTANCES_FILE))
    results = span_rules.read_results(os.path.join(distances.uri, span_rules.RULES_FILE))
    schema = [f for f in schema_findings(anomalies) if not _is_start_bound(f, results)]
    return apply_policy(schema + distance_findings(measured) + rule_findings(results), policy)


def apply_policy(findings: list[Finding], policy: dict[str, str]) -> list[Finding]:
    """The findings with the action the policy gives their kind; `policy` maps on_* settings to stop/warn."""
    return [dataclasses.replace(f, action=policy[POLICY_KINDS[f.kind]]) for f in findings]
