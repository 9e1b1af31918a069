"""DataReportGen: writes the run's offline data report (pipeline/data_validation/data_report.py renders it)."""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from pipeline.artifacts import DISTANCES_FILE, REPORT_FILE, SPAN_SPLIT, TRAIN_SPLIT, DataDistances, DataReport
from pipeline.data_validation import drift, findings, schema_diff, span_rules
from pipeline.data_validation.data_report import render
from pipeline.data_validation.statistics_io import read_schema, read_statistics


@component
def DataReportGen(statistics: InputArtifact[standard_artifacts.ExampleStatistics],
                  span_statistics: InputArtifact[standard_artifacts.ExampleStatistics],
                  anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
                  distances: InputArtifact[DataDistances],
                  schema: InputArtifact[standard_artifacts.Schema],
                  inferred_schema: InputArtifact[standard_artifacts.Schema],
                  report: OutputArtifact[DataReport],
                  on_schema_anomaly: Parameter[str] = findings.STOP,
                  on_drift: Parameter[str] = findings.STOP,
                  on_skew: Parameter[str] = findings.STOP,
                  on_time: Parameter[str] = findings.STOP) -> None:
    policy = {"on_schema_anomaly": on_schema_anomaly, "on_drift": on_drift, "on_skew": on_skew, "on_time": on_time}
    measured, notes = drift.read_distances(os.path.join(distances.uri, DISTANCES_FILE))
    rules = span_rules.read_results(os.path.join(distances.uri, span_rules.RULES_FILE))
    found = findings.collect(anomalies, distances, policy)
    page = render(read_statistics(statistics, TRAIN_SPLIT), read_statistics(span_statistics, SPAN_SPLIT),
                  f"span {span_statistics.span}", found, measured, notes, rules,
                  schema_diff.diff(read_schema(schema), read_schema(inferred_schema)))
    io_utils.write_string_file(os.path.join(report.uri, REPORT_FILE), page)
