"""InferredSchemaGen: the schema TFDV infers from a run's training statistics.

What TFX's SchemaGen does, with the output named `inferred_schema`: TFX's Airflow runner
names artifacts by output key and run, so SchemaGen's `schema` would collide with the
curated schema ImportSchemaGen outputs. The inferred schema is never used to validate;
the data report shows how it differs from the curated one (pipeline/data_validation/schema_diff.py).
"""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from pipeline.artifacts import SCHEMA_FILE, TRAIN_SPLIT
from pipeline.data_validation.statistics_io import read_statistics


@component
def InferredSchemaGen(statistics: InputArtifact[standard_artifacts.ExampleStatistics],
                      inferred_schema: OutputArtifact[standard_artifacts.Schema]) -> None:
    training = statistics_pb2.DatasetFeatureStatisticsList(datasets=[read_statistics(statistics, TRAIN_SPLIT)])
    io_utils.write_pbtxt_file(os.path.join(inferred_schema.uri, SCHEMA_FILE), tfdv.infer_schema(training))
