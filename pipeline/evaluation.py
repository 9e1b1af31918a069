"""The TFMA EvalConfig: which metrics decide the blessing, on which slices."""
from __future__ import annotations

import tensorflow_model_analysis as tfma

from models import features as F
from pipeline.config import PipelineConfig

BLESSING_METRIC = "AUC"
# Slices the metrics are also computed on, besides the overall one.
SLICE_FEATURES = ("trip_start_hour", "payment_type")


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_auc}),
        # Skipped by TFMA on the first run, when there is no blessed baseline yet.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.max_auc_drop - 1e-10}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default",
            label_key=F.TRANSFORMED_LABEL_KEY,
            preprocessing_function_names=["transform_features"])],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[name]) for name in SLICE_FEATURES],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="BinaryAccuracy"),
                # Thresholds are tied to the overall slice: a `threshold` would apply to every
                # slice, and slices without both classes (cash trips: tips unrecorded) have no AUC.
                tfma.MetricConfig(class_name="AUC", per_slice_thresholds=[
                    tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold)]),
            ])],
    )
