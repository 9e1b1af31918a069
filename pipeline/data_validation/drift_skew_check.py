"""DriftSkewCheck: measures drift against the previous span, skew against serving data, and the span rules.

ExampleValidator compares statistics with the schema only. This component takes the
newest span's statistics, the previous span's (resolved from ML Metadata), the training
statistics and, when the config names serving data, that data's statistics, and records
every comparator of the schema with its measured value (see pipeline/data_validation/drift.py).
It also checks the rules that compare the newest span with the previous one and the clock
(time validity, repeated rows: pipeline/data_validation/span_rules.py), recorded beside.
"""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
import os
import time

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from pipeline.artifacts import DISTANCES_FILE, SPAN_SPLIT, TRAIN_SPLIT, DataDistances
from pipeline.data_validation import drift, span_rules
from pipeline.data_validation.serving_data import serving_statistics
from pipeline.data_validation.statistics_io import read_schema, read_statistics


def _is_earlier_span(previous, current) -> bool:
    return artifact_utils.decode_split_names(previous.split_names) == [SPAN_SPLIT] and 0 < previous.span < current.span


@component
def DriftSkewCheck(span_statistics: InputArtifact[standard_artifacts.ExampleStatistics],
                   training_statistics: InputArtifact[standard_artifacts.ExampleStatistics],
                   schema: InputArtifact[standard_artifacts.Schema],
                   distances: OutputArtifact[DataDistances],
                   previous_statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
                   serving_data: Parameter[str] = "",
                   serving_data_fingerprint: Parameter[str] = "",
                   time_tolerance_hours: Parameter[float] = 24.0,
                   min_time_agreement: Parameter[float] = 0.99,
                   max_duplicate_rows: Parameter[float] = 0.01) -> None:
    """`serving_data`: CSV file or folder of serving requests, or the request log's file pattern.

    The span rules' thresholds are the config's settings of the same names.
    """
    del serving_data_fingerprint  # only makes changed serving data a new input
    curated = read_schema(schema)
    current = read_statistics(span_statistics, SPAN_SPLIT)
    current_name = f"span {span_statistics.span}"
    measured, notes = [], []
    previous, previous_name = None, ""
    # The Kubeflow build resolves just the newest statistics on record: only an earlier span's count.
    if previous_statistics is not None and _is_earlier_span(previous_statistics, span_statistics):
        previous, previous_name = read_statistics(previous_statistics, SPAN_SPLIT), f"span {previous_statistics.span}"
        measured += drift.measure(current, previous, curated, "drift", current_name, previous_name)
    else:
        notes.append(f"Drift not measured: ML Metadata holds no statistics of a span before {current_name} "
                     "that got through the data gate; the next span is compared with this one if it does.")
    if serving_data:
        training = read_statistics(training_statistics, TRAIN_SPLIT)
        measured += drift.measure(serving_statistics(serving_data, curated), training, curated, "skew",
                                  f"serving data {serving_data}", "training data")
    else:
        notes.append("Skew not measured: no serving_data in the pipeline config.")
    drift.write_distances(os.path.join(distances.uri, DISTANCES_FILE), measured, notes)
    # The clock's bound is the time of this check: a cached result keeps the time it was checked at.
    rules = span_rules.check(current, previous, curated, time.time(), time_tolerance_hours, min_time_agreement,
                             max_duplicate_rows, current_name, previous_name)
    span_rules.write_results(os.path.join(distances.uri, span_rules.RULES_FILE), rules)
