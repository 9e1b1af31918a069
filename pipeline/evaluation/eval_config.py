"""The TFMA EvalConfig: which metrics decide the blessing, on which slices."""
from __future__ import annotations

import dataclasses
import json

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.writers import eval_config_writer

from models import features as F
from pipeline import artifacts
from pipeline.config import PipelineConfig
from pipeline.evaluation import slice_floor

BLESSING_METRIC = "AUC"
# Slices the metrics are also computed on, besides the overall one; a tuple of several
# features is their cross (every payment type at every hour).
SLICES: tuple[tuple[str, ...], ...] = (
    ("trip_start_hour",), ("payment_type",), ("company",), ("payment_type", "trip_start_hour"))
SLICE_FEATURES = tuple(dict.fromkeys(name for spec in SLICES for name in spec))
# The change threshold is widened by this much, so that a drop of exactly max_auc_drop passes.
CHANGE_TOLERANCE = 1e-10


def slicing_specs() -> list[tfma.SlicingSpec]:
    return [tfma.SlicingSpec(feature_keys=list(spec)) for spec in SLICES]


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    overall = [tfma.SlicingSpec()]
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_auc}),
        # Skipped by TFMA on the first run, when there is no blessed baseline yet.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.max_auc_drop - CHANGE_TOLERANCE}))
    # Every slice with min_slice_examples of each class: its AUC may not be below
    # min_slice_auc (see pipeline/evaluation/slice_floor.py for why this is a metric of its own).
    floor_threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(upper_bound={"value": 0.0}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=artifacts.SERVING_DEFAULT,
            label_key=F.TRANSFORMED_LABEL_KEY,
            preprocessing_function_names=["transform_features"])],
        slicing_specs=overall + slicing_specs(),
        metrics_specs=[tfma.MetricsSpec(
            metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="BinaryAccuracy"),
                tfma.MetricConfig(class_name="Precision"),
                tfma.MetricConfig(class_name="Recall"),
                # Mean prediction / mean label: 1.0 when the probabilities are right on average.
                tfma.MetricConfig(class_name="Calibration"),
                # Share of big tips: tells which slices hold both classes (see pipeline/evaluation/blessing.py).
                tfma.MetricConfig(class_name="MeanLabel"),
                tfma.MetricConfig(class_name="MeanPrediction"),
                # The overall thresholds are tied to the overall slice: a `threshold` would apply
                # to every slice, and slices without both classes (cash trips) have no real AUC.
                tfma.MetricConfig(class_name="AUC", per_slice_thresholds=[
                    tfma.PerSliceMetricThreshold(slicing_specs=overall, threshold=auc_threshold)]),
                tfma.MetricConfig(
                    class_name=slice_floor.SliceAUCShortfall.__name__, module=slice_floor.__name__,
                    config=json.dumps({"floor": config.min_slice_auc, "min_examples": config.min_slice_examples}),
                    per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                        slicing_specs=slicing_specs(), threshold=floor_threshold)]),
            ])],
    )


def thresholds_used(evaluation_uri: str, config: PipelineConfig) -> PipelineConfig:
    """`config` with the thresholds Evaluator applied in that evaluation: eval_config() read back.

    An older version's card must show the thresholds it was judged by, not today's. The
    change threshold is absent from a first run's EvalConfig (there was no baseline), so
    max_auc_drop then stays as in `config`.
    """
    eval_config = eval_config_writer.load_eval_run(evaluation_uri)[0]
    used = {}
    for metric in (m for spec in eval_config.metrics_specs for m in spec.metrics):
        if metric.class_name == slice_floor.SliceAUCShortfall.__name__:
            floor = json.loads(metric.config)
            used.update(min_slice_auc=floor["floor"], min_slice_examples=floor["min_examples"])
        elif metric.class_name == "AUC":
            for per_slice in metric.per_slice_thresholds:
                threshold = per_slice.threshold
                if threshold.value_threshold.HasField("lower_bound"):
                    used["min_auc"] = threshold.value_threshold.lower_bound.value
                if threshold.change_threshold.HasField("absolute"):
                    used["max_auc_drop"] = round(-threshold.change_threshold.absolute.value - CHANGE_TOLERANCE, 9)
    return dataclasses.replace(config, **used)
