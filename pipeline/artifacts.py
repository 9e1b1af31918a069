"""The names the pipeline's parts agree on: artifact types, node ids, splits, files, signatures.

Runs, lineage, resolvers, tests and benchmarks find a component's executions in ML
Metadata by its node id, and readers of an artifact find its data by split and file
name; a name spelled twice can drift apart, so each is spelled here once.
"""
from __future__ import annotations

import threading

# Node ids (a component's id defaults to its class name). ML Metadata records runs by
# them: renaming one loses the link to earlier runs.
CSV_CHECK = "CsvCheck"
EXAMPLE_GEN = "CsvExampleGen"
STATISTICS_GEN = "StatisticsGen"
SPAN_STATISTICS_GEN = "SpanStatisticsGen"
DRIFT_SKEW_CHECK = "DriftSkewCheck"
DATA_REPORT_GEN = "DataReportGen"
DATA_GATE = "DataGate"
TRANSFORM = "Transform"
TUNER = "Tuner"
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
SERVABILITY_CHECK = "ServabilityCheck"
PUSHER = "Pusher"
BASELINE_RESOLVER = "baseline_model_resolver"
PREVIOUS_SPAN_RESOLVER = "previous_span_resolver"
TUNED_HYPERPARAMETERS_RESOLVER = "tuned_hyperparameters_resolver"

# Splits: ExampleGen's 2:1 hash split, and the one split of SpanStatisticsGen's output.
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
SPAN_SPLIT = "span"

# Files inside artifacts.
STATISTICS_FILE = "FeatureStats.pb"  # StatisticsGen's name, so TFX tools read ours too
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's file in each split folder
DISTANCES_FILE = "distances.json"
REPORT_FILE = "index.html"
SCHEMA_FILE = "schema.pbtxt"

# Serving signatures of the exported model (models/signatures.py) and their tensors.
SERVING_DEFAULT = "serving_default"  # serialized tf.Examples in, tip probability out
SERVING_RAW = "serving_raw"  # one named input per raw feature
EXAMPLES_INPUT = "examples"


# The project's own artifact types, made on first use (module __getattr__): they subclass
# TFX's Artifact, and importing TFX imports TensorFlow (seconds), which readers of the names
# above (`taxi-pipeline runs`, `lineage`, `rollback`) never need.
_ARTIFACT_TYPES = ("DataDistances", "DataReport")
_defining = threading.Lock()  # two threads asking at once still get the same classes


def _define_artifact_types() -> None:
    from tfx.types.artifact import Artifact

    class DataDistances(Artifact):
        """distances.json: every drift, skew and volume measure of a run with its threshold."""

        TYPE_NAME = "taxi_tips.DataDistances"

    class DataReport(Artifact):
        """index.html: the run's offline data report."""

        TYPE_NAME = "taxi_tips.DataReport"

    for made in (DataDistances, DataReport):
        made.__qualname__ = made.__name__  # pickled and named as pipeline.artifacts.<name>, as if at top level
        globals()[made.__name__] = made


def __getattr__(name: str):
    if name not in _ARTIFACT_TYPES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _defining:
        if name not in globals():
            _define_artifact_types()
    return globals()[name]
