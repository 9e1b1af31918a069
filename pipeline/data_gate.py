"""DataGate: the component that stops a run when ExampleValidator found anomalies.

ExampleValidator only records anomalies; TFX lets the run go on to train on bad data.
This gate sits between validation and Transform and fails the run, listing every
anomaly by split and feature, so nothing downstream (Transform, Trainer, Pusher) runs.
"""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
import os
from typing import TypedDict

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

ANOMALIES_FILE = "SchemaDiff.pb"


class DataGateError(RuntimeError):
    """The run was stopped because the data broke the schema."""


def read_findings(anomalies: types.Artifact) -> list[str]:
    """One line per anomaly: split, feature, what is wrong."""
    findings = []
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
        report = anomalies_pb2.Anomalies()
        report.ParseFromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(report.anomaly_info.items()):
            findings.append(f"split {split}: feature '{feature}': {info.short_description}: {info.description}")
        if report.HasField("dataset_anomaly_info"):
            info = report.dataset_anomaly_info
            findings.append(f"split {split}: dataset: {info.short_description}: {info.description}")
    return findings


class GateResult(TypedDict):
    checked_splits: int


@component
def DataGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]) -> GateResult:
    findings = read_findings(anomalies)
    if findings:
        raise DataGateError(
            "the data gate stopped the run: the new data breaks the schema "
            f"({anomalies.uri}).\n  " + "\n  ".join(findings) +
            "\nFix the data, or if the change is intended, update schema/schema.pbtxt "
            "(see schema/README.md) and run again.")
    return {"checked_splits": len(artifact_utils.decode_split_names(anomalies.split_names))}
