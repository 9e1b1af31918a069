"""The TFMA EvalConfig: which metrics decide the blessing, on which slices."""
from __future__ import annotations

import dataclasses
import json

import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.writers import eval_config_writer

from models import features as F
from pipeline import artifacts
from pipeline.config import PipelineConfig
from pipeline.evaluation import auc_change_bound, coarse_auc, slice_floor

BLESSING_METRIC = "AUC"
# Slices the metrics are also computed on, besides the overall one; a tuple of several
# features is their cross (every payment type at every hour).
SLICES: tuple[tuple[str, ...], ...] = (
    ("trip_start_hour",), ("payment_type",), ("company",), ("payment_type", "trip_start_hour"))
SLICE_FEATURES = tuple(dict.fromkeys(name for spec in SLICES for name in spec))
# The change threshold is widened by this much, so that a drop of exactly max_auc_drop passes.
CHANGE_TOLERANCE = 1e-10
# 95% intervals by TFMA's jackknife: 20 buckets of the examples (bulk_evaluation puts an
# example in one by a hash of its bytes, TFMA at random), each leave-one-bucket-out sample
# merges the buckets' partial results, so no example is read twice and candidate and
# baseline share the buckets (the change's interval is paired).
# AUC is a U-statistic, for which the jackknife's standard error is sound. TFMA's Poisson
# bootstrap re-reads every example for each of its 20 resamples: on the shipped data
# (4,966 eval rows, 137 slices, candidate and baseline) it had not finished in 900 s of
# wall time where the jackknife took 224 s and no intervals 57 s (same busy machine).
CONFIDENCE_INTERVALS = config_pb2.ConfidenceIntervalOptions.JACKKNIFE
# AUC is coarse_auc.CoarseAUC, on 1,000 thresholds: with intervals the process CPU is 104 s
# against 42.5 s without, where TFMA's default 10,000 made Evaluator several times slower.


def slicing_specs() -> list[tfma.SlicingSpec]:
    return [tfma.SlicingSpec(feature_keys=list(spec)) for spec in SLICES]


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    overall = [tfma.SlicingSpec()]
    # Overall AUC is a fixed standard: judged on its value, the best estimate; its interval is shown.
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_auc}))
    # The change against the baseline is judged on its interval: AUCChangeUpperBound is the
    # upper end of the 95% interval of (candidate - baseline) AUC, so a candidate is blocked
    # only when the whole interval lies below -max_auc_drop (pipeline/evaluation/auc_change_bound.py
    # says why TFMA's change threshold on AUC itself cannot do this). Skipped by TFMA on the
    # first run, when there is no blessed baseline yet.
    change_threshold = tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
        direction=tfma.MetricDirection.HIGHER_IS_BETTER,
        absolute={"value": -config.max_auc_drop - CHANGE_TOLERANCE}))
    # Every slice with min_slice_examples of each class: its AUC may not be below
    # min_slice_auc (see pipeline/evaluation/slice_floor.py for why this is a metric of its own).
    # A floor is a fixed standard like min_auc: judged on the value, the interval shown beside it.
    floor_threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(upper_bound={"value": 0.0}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=artifacts.SERVING_DEFAULT,
            label_key=F.TRANSFORMED_LABEL_KEY,
            preprocessing_function_names=["transform_features"])],
        slicing_specs=overall + slicing_specs(),
        options=tfma.Options(compute_confidence_intervals=wrappers_pb2.BoolValue(value=True),
                             confidence_intervals=config_pb2.ConfidenceIntervalOptions(method=CONFIDENCE_INTERVALS)),
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
                # No metric carries a JSON `config` (coarse_auc.py says why): parameters are in the class.
                tfma.MetricConfig(class_name=coarse_auc.CoarseAUC.__name__, module=coarse_auc.__name__,
                                  per_slice_thresholds=[
                    tfma.PerSliceMetricThreshold(slicing_specs=overall, threshold=auc_threshold)]),
                tfma.MetricConfig(
                    class_name=slice_floor.class_name(config.min_slice_auc, config.min_slice_examples),
                    module=slice_floor.__name__,
                    per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                        slicing_specs=slicing_specs(), threshold=floor_threshold)]),
                tfma.MetricConfig(
                    class_name=auc_change_bound.AUCChangeUpperBound.__name__, module=auc_change_bound.__name__,
                    per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                        slicing_specs=overall, threshold=change_threshold)]),
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
        named_floor = slice_floor.parameters(metric.class_name)
        if named_floor:
            used.update(min_slice_auc=named_floor[0], min_slice_examples=named_floor[1])
        elif metric.class_name == slice_floor.SliceAUCShortfall.__name__:  # evaluations before named floors
            floor = json.loads(metric.config)
            used.update(min_slice_auc=floor["floor"], min_slice_examples=floor["min_examples"])
        # The change threshold sits on AUCChangeUpperBound; on AUC itself in evaluations before intervals.
        elif metric.class_name in ("AUC", coarse_auc.CoarseAUC.__name__,
                                   auc_change_bound.AUCChangeUpperBound.__name__):
            for per_slice in metric.per_slice_thresholds:
                threshold = per_slice.threshold
                if threshold.value_threshold.HasField("lower_bound"):
                    used["min_auc"] = threshold.value_threshold.lower_bound.value
                if threshold.change_threshold.HasField("absolute"):
                    used["max_auc_drop"] = round(-threshold.change_threshold.absolute.value - CHANGE_TOLERANCE, 9)
    return dataclasses.replace(config, **used)
