"""What the data checks found, and what the gate policy does with each finding.

Schema anomalies come from ExampleValidator; drift, volume and skew from the distances
DriftSkewCheck recorded. The policy (pipeline config: on_schema_anomaly, on_drift,
on_skew) says for each kind whether it stops the run or only warns.
"""
from __future__ import annotations

import dataclasses
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from pipeline import artifacts
from pipeline.data_validation import drift

STOP, WARN = "stop", "warn"
POLICY_KINDS = {"schema": "on_schema_anomaly", "drift": "on_drift", "volume": "on_drift", "skew": "on_skew"}


@dataclasses.dataclass
class Finding:
    kind: str  # schema, drift, volume or skew
    feature: str  # "" for the dataset as a whole
    what: str
    where: str  # "split train", "span 5 vs span 4", ...
    value: float | None = None
    threshold: str = ""
    action: str = STOP

    def line(self) -> str:
        subject = f"feature '{self.feature}'" if self.feature else "dataset"
        measured = f" = {self.value:.4g} (threshold {self.threshold})" if self.value is not None else ""
        return f"[{self.action}] {self.kind}: {subject}: {self.what}{measured}, {self.where}"


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


def collect(anomalies, distances, policy: dict[str, str]) -> list[Finding]:
    """Every finding of a run from ExampleValidator's and DriftSkewCheck's artifacts, with its action."""
    measured, _ = drift.read_distances(os.path.join(distances.uri, artifacts.DISTANCES_FILE))
    return apply_policy(schema_findings(anomalies) + distance_findings(measured), policy)


def apply_policy(findings: list[Finding], policy: dict[str, str]) -> list[Finding]:
    """The findings with the action the policy gives their kind; `policy` maps on_* settings to stop/warn."""
    return [dataclasses.replace(f, action=policy[POLICY_KINDS[f.kind]]) for f in findings]
