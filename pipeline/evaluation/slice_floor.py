"""SliceAUCShortfall: a TFMA metric that lets Evaluator hold every sizeable slice to an AUC floor.

A plain per-slice AUC threshold cannot say "only for slices with enough examples", and
TFMA reports AUC 0.0 for a slice that holds only one class (cash trips, whose tips are not
recorded), so such a threshold would fail every candidate. This metric is how far a
slice's AUC falls below the floor, counted only where the slice has at least
`min_examples` examples of each class, and 0 elsewhere; Evaluator's threshold on it is
an upper bound of 0. Keeping the floor inside Evaluator keeps its blessing the one that
Pusher and the baseline resolver read.

The floor and min_examples travel in the metric's class name (class_name(), parameters()),
not in a JSON `config`: see coarse_auc.py for why the EvalConfig holds no quotes to escape.
"""
from __future__ import annotations

import re
from typing import Any, Optional

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types, metric_util

from pipeline.evaluation import coarse_auc

NAME = "slice_auc_shortfall"


def _computations(name: str = NAME, floor: float = 0.0, min_examples: int = 1,
                  num_thresholds: int = coarse_auc.THRESHOLDS,
                  eval_config: Optional[tfma.EvalConfig] = None, model_name: str = "", output_name: str = "",
                  sub_key: Optional[metric_types.SubKey] = None,
                  aggregation_type: Optional[metric_types.AggregationType] = None,
                  class_weights: Optional[dict[int, float]] = None,
                  example_weighted: bool = False) -> metric_types.MetricComputations:
    # Names starting with "_" are private to TFMA: computed, used here, not written out.
    # The same thresholds as the AUC the EvalConfig reports, so TFMA computes the ROC curve once for both.
    parts = {"auc": tfma.metrics.AUC(name=f"_{name}_auc", num_thresholds=num_thresholds),
             "count": tfma.metrics.ExampleCount(name=f"_{name}_count"),
             "mean_label": tfma.metrics.MeanLabel(name=f"_{name}_mean_label")}
    computations, keys = [], {}
    for part, metric in parts.items():
        computations.extend(metric.computations(
            eval_config=eval_config, model_names=[model_name], output_names=[output_name], sub_keys=[sub_key],
            aggregation_type=aggregation_type, class_weights=class_weights, example_weighted=example_weighted))
        keys[part] = metric_types.MetricKey(
            name=metric.name, model_name=model_name, output_name=output_name, sub_key=sub_key,
            example_weighted=None if part == "count" else example_weighted)
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name, sub_key=sub_key,
                                 example_weighted=example_weighted)

    def result(metrics: dict[metric_types.MetricKey, Any]) -> dict[metric_types.MetricKey, float]:
        return {key: shortfall(_lookup(metrics, keys["auc"]), _lookup(metrics, keys["count"]),
                               _lookup(metrics, keys["mean_label"]), floor, min_examples)}

    computations.append(metric_types.DerivedMetricComputation(keys=[key], result=result))
    return computations


def _lookup(metrics: dict, key: metric_types.MetricKey) -> float:
    """The value under `key`, matching on name and model only (TFMA fills the other fields its own way)."""
    if key in metrics:
        return float(metrics[key])
    for other, value in metrics.items():
        if getattr(other, "name", None) == key.name and other.model_name == key.model_name:
            return float(value)
    raise KeyError(f"{key.name} not computed")


def shortfall(auc: float, count: float, mean_label: float, floor: float, min_examples: int) -> float:
    """floor - AUC for a slice the floor applies to, else 0."""
    if not is_gated(count, mean_label, min_examples):
        return 0.0
    return max(0.0, floor - auc)


def is_gated(count: float, mean_label: float, min_examples: int) -> bool:
    """Whether a slice holds `min_examples` examples of each class (labels are 0/1)."""
    positives = count * mean_label
    # Rounded: count * mean_label is a float sum of labels.
    return round(positives) >= min_examples and round(count - positives) >= min_examples


class SliceAUCShortfall(tfma.metrics.Metric):
    def __init__(self, name: str = NAME, floor: float = 0.0, min_examples: int = 1,
                 num_thresholds: int = coarse_auc.THRESHOLDS):
        super().__init__(metric_util.merge_per_key_computations(_computations), name=name,
                         floor=floor, min_examples=min_examples, num_thresholds=num_thresholds)


metric_types.register_metric(SliceAUCShortfall)

# "SliceAUCShortfall_floor_0p55_min_50": "." is written "p" so that the name stays one word.
_NAMED = re.compile(rf"{SliceAUCShortfall.__name__}_floor_([0-9p]+)_min_([0-9]+)")


def class_name(floor: float, min_examples: int) -> str:
    """The class name the EvalConfig gives for this floor; TFMA finds the class by it (__getattr__ below)."""
    if not 0.0 <= floor <= 1.0 or min_examples < 0:
        raise ValueError(f"an AUC floor lies in [0, 1] and min_examples is >= 0; got {floor}, {min_examples}")
    digits = format(floor, ".6f").rstrip("0").rstrip(".")  # a floor to a millionth
    return f"{SliceAUCShortfall.__name__}_floor_{digits.replace('.', 'p')}_min_{int(min_examples)}"


def parameters(name: str) -> tuple[float, int] | None:
    """(floor, min_examples) from a name class_name() gave, or None for another name."""
    match = _NAMED.fullmatch(name)
    return (float(match[1].replace("p", ".")), int(match[2])) if match else None


def __getattr__(name: str) -> type:
    # TFMA resolves a metric by getattr(module, class_name): a named floor is a subclass with its defaults.
    found = parameters(name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    floor, min_examples = found

    def __init__(self, name: str = NAME, floor: float = floor, min_examples: int = min_examples,
                 num_thresholds: int = coarse_auc.THRESHOLDS):
        SliceAUCShortfall.__init__(self, name=name, floor=floor, min_examples=min_examples,
                                   num_thresholds=num_thresholds)

    return type(name, (SliceAUCShortfall,), {"__init__": __init__, "__module__": __name__})
