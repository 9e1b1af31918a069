"""Reading and writing statistics and schemas, and TFDV's statistics options, for every data check.

Statistics live in TFX's layout (a FeatureStats.pb per split folder), so TFX's own tools
read what SpanStatisticsGen writes, and the checks read StatisticsGen's output the same way.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from pipeline.artifacts import STATISTICS_FILE
from pipeline.data_validation.row_measures import RowMeasures

# Quantile histograms with 50 equal-mass buckets: the drift and skew measures of numeric
# features are computed on them (pipeline/data_validation/drift.py); TFDV's default of 10 is too coarse.
QUANTILE_BUCKETS = 50
BOM = "\ufeff".encode()


def stats_options(schema: schema_pb2.Schema | None = None, row_measures: bool = False) -> tfdv.StatsOptions:
    """`row_measures`: also the row-level measures of row_measures.py (a span's statistics only)."""
    generators = [RowMeasures()] if row_measures else None
    if schema is None:
        return tfdv.StatsOptions(num_quantiles_histogram_buckets=QUANTILE_BUCKETS, generators=generators)
    # With the schema, CSV columns get the schema's types rather than ones guessed per file.
    return tfdv.StatsOptions(num_quantiles_histogram_buckets=QUANTILE_BUCKETS, schema=schema,
                             infer_type_from_schema=True, generators=generators)


def csv_statistics(paths: list[str], schema: schema_pb2.Schema | None = None,
                   row_measures: bool = False) -> statistics_pb2.DatasetFeatureStatistics:
    """Statistics of CSV files with a header line, typed by the schema if one is given."""
    if any(_starts_with_bom(path) for path in paths):
        # TFDV keeps a UTF-8 byte-order mark (spreadsheets' "CSV UTF-8") in the first column's
        # name, and then drops that column as one the schema does not know. CsvCheck and ExampleGen
        # strip it; here the files are read from copies without it (such files are rare).
        with tempfile.TemporaryDirectory() as folder:
            copies = []
            for number, path in enumerate(paths):
                copies.append(os.path.join(folder, f"{number:05d}.csv"))
                with tf.io.gfile.GFile(path, "rb") as source, open(copies[-1], "wb") as target:
                    if source.read(len(BOM)) != BOM:
                        source.seek(0)
                    shutil.copyfileobj(source, target)
            return csv_statistics(copies, schema, row_measures)
    # generate_statistics_from_csv takes one glob pattern: the files' folder's *.csv.
    pattern = paths[0] if len(paths) == 1 else os.path.join(os.path.dirname(paths[0]), "*.csv")
    return tfdv.generate_statistics_from_csv(pattern, stats_options=stats_options(schema, row_measures)).datasets[0]


def _starts_with_bom(path: str) -> bool:
    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read(len(BOM)) == BOM


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
