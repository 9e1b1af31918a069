"""Statistics of one span on its own, recorded in ML Metadata with the span's number.

The training statistics cover every span a run reads as one dataset (ExampleGen records
that as span 0), so they cannot tell how the newest span differs from the one before.
SpanStatisticsGen computes the newest span's statistics by itself, once per span; the
next run finds them in ML Metadata as "the previous span" without recomputing anything.
"""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from pipeline.spans import span_files, spans_to_read

SPAN_SPLIT = "span"
STATISTICS_FILE = "FeatureStats.pb"  # the name StatisticsGen uses, so TFX tools read ours too
# Quantile histograms with 50 equal-mass buckets: the drift and skew measures of numeric
# features are computed on them (pipeline/drift.py); TFDV's default of 10 is too coarse.
QUANTILE_BUCKETS = 50


def stats_options(schema: schema_pb2.Schema | None = None) -> tfdv.StatsOptions:
    if schema is None:
        return tfdv.StatsOptions(num_quantiles_histogram_buckets=QUANTILE_BUCKETS)
    # With the schema, CSV columns get the schema's types rather than ones guessed per file.
    return tfdv.StatsOptions(num_quantiles_histogram_buckets=QUANTILE_BUCKETS, schema=schema,
                             infer_type_from_schema=True)


def csv_statistics(paths: list[str],
                   schema: schema_pb2.Schema | None = None) -> statistics_pb2.DatasetFeatureStatistics:
    """Statistics of CSV files with a header line, typed by the schema if one is given."""
    # generate_statistics_from_csv takes one glob pattern: the files' folder's *.csv.
    pattern = paths[0] if len(paths) == 1 else os.path.join(os.path.dirname(paths[0]), "*.csv")
    return tfdv.generate_statistics_from_csv(pattern, stats_options=stats_options(schema)).datasets[0]


def write_statistics(artifact: standard_artifacts.ExampleStatistics, split: str,
                     statistics: statistics_pb2.DatasetFeatureStatistics) -> None:
    listing = statistics_pb2.DatasetFeatureStatisticsList(datasets=[statistics])
    io_utils.write_bytes_file(os.path.join(artifact_utils.get_split_uri([artifact], split), STATISTICS_FILE),
                              listing.SerializeToString())


def read_statistics(artifact, split: str) -> statistics_pb2.DatasetFeatureStatistics:
    listing = statistics_pb2.DatasetFeatureStatisticsList()
    listing.ParseFromString(io_utils.read_bytes_file(
        os.path.join(artifact_utils.get_split_uri([artifact], split), STATISTICS_FILE)))
    return listing.datasets[0]


def read_schema(artifact) -> schema_pb2.Schema:
    """The schema a Schema artifact (ImportSchemaGen's or SchemaGen's) holds."""
    return io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(artifact.uri))


def load_schema(path: str) -> schema_pb2.Schema:
    return tfdv.load_schema_text(path)


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
    write_statistics(span_statistics, SPAN_SPLIT, csv_statistics(span_files(data_root, span), load_schema(schema_path)))
