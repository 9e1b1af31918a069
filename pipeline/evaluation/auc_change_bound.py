"""AUCChangeUpperBound: Evaluator judges the change against the baseline on its interval.

TFMA's own change threshold compares the point value of (candidate - baseline) AUC: its
metrics_validator calls float() on a metric, which for a value with a confidence interval
is the unsampled value, so the interval never takes part. On about 5,000 evaluation rows
two equally good models differ by a few thousandths either way, and a point comparison
with max_auc_drop 0 blocks or blesses on that noise.

This metric is the upper end of the 95% interval TFMA computes for that difference
(jackknife over the same examples for both models, so the difference is paired; see
eval_config.py). Its change threshold, upper end >= -max_auc_drop, blocks a candidate only
when the whole interval lies below -max_auc_drop: a drop shown by the evidence. It is a
CIDerivedMetricComputation, which TFMA runs after the intervals and before validation,
so the blessing Evaluator writes (the one Pusher and the baseline resolver read) is this
decision, with no step of ours after Evaluator.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.utils import math_util, model_util

NAME = "auc_change_upper_bound"
AUC = "auc"  # the name TFMA's AUC metric writes its values under


def interval(value: Any) -> tuple[float, float] | None:
    """The 95% interval TFMA's writer reports for `value`, or None when TFMA computed none."""
    if not isinstance(value, types.ValueWithTDistribution) or value.sample_standard_deviation is None:
        return None
    _, lower, upper = math_util.calculate_confidence_interval(value)
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return None
    return float(lower), float(upper)


def upper_bound(value: Any) -> float:
    """Upper end of the interval; without one (intervals off, a failed sample) the point value,
    which is what TFMA's change threshold would have judged."""
    bounds = interval(value)
    return bounds[1] if bounds else float(value)


def _computations(name: str = NAME, eval_config: Optional[tfma.EvalConfig] = None, model_name: str = "",
                  output_name: str = "", sub_key: Optional[metric_types.SubKey] = None,
                  aggregation_type: Optional[metric_types.AggregationType] = None,
                  example_weighted: bool = False) -> metric_types.MetricComputations:
    baseline = model_util.get_baseline_model_spec(eval_config) if eval_config else None
    if baseline is None or model_name == baseline.name:
        return []  # a change exists only for the candidate, and only when there is a baseline
    # The key TFMA's validator looks up for a change threshold on this metric.
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name, sub_key=sub_key,
                                 aggregation_type=aggregation_type, example_weighted=example_weighted).make_diff_key()

    def result(metrics: dict[metric_types.MetricKey, Any]) -> dict[metric_types.MetricKey, float]:
        for other, value in metrics.items():
            # Matched on name, model and diff only: TFMA fills the other key fields its own way.
            if (getattr(other, "name", None) == AUC and other.model_name == model_name and other.is_diff
                    and other.output_name == output_name):
                return {key: upper_bound(value)}
        return {}  # no AUC change on this slice: TFMA's validator reports the threshold's metric as missing

    return [metric_types.CIDerivedMetricComputation(keys=[key], result=result)]


class AUCChangeUpperBound(tfma.metrics.Metric):
    def __init__(self, name: str = NAME):
        super().__init__(metric_util.merge_per_key_computations(_computations), name=name)

    @property
    def compute_confidence_interval(self) -> bool:
        return False  # it is the end of an interval already


metric_types.register_metric(AUCChangeUpperBound)
