"""SpanStatisticsGen: statistics of one span on its own, recorded in ML Metadata with the span's number.

The training statistics cover every span a run reads as one dataset (ExampleGen records
that as span 0), so they cannot tell how the newest span differs from the one before.
SpanStatisticsGen computes the newest span's statistics by itself, once per span; the
next run finds them in ML Metadata as "the previous span" without recomputing anything.
In the same pass it takes the row-level measures span_rules.py checks (row_measures.py).
"""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from pipeline.artifacts import SPAN_SPLIT
from pipeline.data_validation.statistics_io import csv_statistics, load_schema, write_statistics
from pipeline.ingest.spans import span_files, spans_to_read


@component
def SpanStatisticsGen(data_root: Parameter[str], spans: Parameter[str], schema_path: Parameter[str],
                      data_fingerprint: Parameter[str],
                      span_statistics: OutputArtifact[standard_artifacts.ExampleStatistics]) -> None:
    """Statistics of the newest span this run reads; `data_fingerprint` makes changed files a new input.

    The output is not called `statistics`: TFX's Airflow runner names artifacts by output
    key and run, and StatisticsGen's output of the same type already has that name.
    """
    del data_fingerprint
    span = spans_to_read(data_root, spans)[-1]
    span_statistics.span = span
    span_statistics.split_names = artifact_utils.encode_split_names([SPAN_SPLIT])
    write_statistics(span_statistics, SPAN_SPLIT, csv_statistics(span_files(data_root, span), load_schema(schema_path),
                                                                row_measures=True))
