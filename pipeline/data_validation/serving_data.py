"""Statistics of serving data, for the training/serving skew check.

Serving data comes either as CSV files of requests (the training columns without the
label) or as the model server's request log (TFRecord files of PredictionLog records,
see serving/server/request_log.py), whose logged tf.Examples are what clients really sent.
"""
from __future__ import annotations

import os
import tempfile

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from pipeline.data_validation.statistics_io import csv_statistics, stats_options


def _csv_files(path: str) -> list[str]:
    if path.endswith(".csv"):
        return [path] if tf.io.gfile.exists(path) else []
    if tf.io.gfile.isdir(path):
        return sorted(tf.io.gfile.glob(os.path.join(path, "*.csv")))
    return []


def serving_statistics(path: str, schema: schema_pb2.Schema) -> statistics_pb2.DatasetFeatureStatistics:
    """Statistics of a serving CSV (file or folder) or of request-log files matching a glob."""
    csv_files = _csv_files(path)
    if csv_files:
        return csv_statistics(csv_files, schema)
    from serving.server.request_log import logged_examples  # only the request-log case needs it

    with tempfile.TemporaryDirectory() as folder:
        examples_path = os.path.join(folder, "examples.tfrecord")
        count = 0
        with tf.io.TFRecordWriter(examples_path) as writer:
            for example in logged_examples(path):
                writer.write(example.SerializeToString())
                count += 1
        if count == 0:
            raise ValueError(f"serving data {path}: no CSV file there and no logged tf.Examples in files "
                             "matching it; give a CSV of requests, a folder of them, or the request log's "
                             "file pattern (e.g. logs/requests-*.tfrecord)")
        return tfdv.generate_statistics_from_tfrecord(examples_path, stats_options=stats_options()).datasets[0]
