"""Live quality: TFMA's metrics on the logged predictions joined with their outcomes.

The model is not run again: TFMA reads the probability each version answered, so AUC,
precision, recall and calibration have the Evaluator's definitions (the same TFMA metric
classes) on live traffic. Every metric is computed per served version, per version and
label, and per version on each of the Evaluator's slices.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import pandas as pd
import tensorflow_model_analysis as tfma

from pipeline.evaluation import slice_floor
from pipeline.evaluation.eval_config import SLICES
from pipeline.monitoring.logged_predictions import LABEL, PREDICTION, VERSION, VERSION_LABEL

# What an empty slice feature is sliced as. The Evaluator puts a row without the feature in no slice
# of it; here such rows get a slice of their own, reported but never gated (see SliceQuality.gated).
MISSING_TEXT, MISSING_NUMBER = "(missing)", -1
METRICS = ("ExampleCount", "AUC", "Precision", "Recall", "Calibration", "MeanLabel", "MeanPrediction")
# TFMA's output names of METRICS, in the same order.
METRIC_NAMES = ("example_count", "auc", "precision", "recall", "calibration", "mean_label", "mean_prediction")


@dataclasses.dataclass
class SliceQuality:
    version: int
    version_label: str | None  # None: every request of the version, whatever label it came by
    slice: str  # "overall", or "payment_type=Credit Card, trip_start_hour=18" as the Evaluator names slices
    metrics: dict[str, float]
    missing: bool = False  # a slice of rows without one of its features: none of the Evaluator's

    @property
    def count(self) -> int:
        return int(self.metrics.get("example_count", 0))

    def gated(self, min_examples: int) -> bool:
        """One of the Evaluator's slices holding min_examples of each class, so its AUC is a
        measurement (as slice_floor.is_gated)."""
        return not self.missing and slice_floor.is_gated(self.count, self.metrics.get("mean_label", 0.0), min_examples)


def slicing_specs() -> list[tfma.SlicingSpec]:
    specs = [tfma.SlicingSpec(feature_keys=[VERSION]), tfma.SlicingSpec(feature_keys=[VERSION, VERSION_LABEL])]
    return specs + [tfma.SlicingSpec(feature_keys=[VERSION, *spec]) for spec in SLICES]


def live_eval_config() -> tfma.EvalConfig:
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key=LABEL, prediction_key=PREDICTION)],
        slicing_specs=slicing_specs(),
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name=name) for name in METRICS])])


def _table(rows: pd.DataFrame) -> pd.DataFrame:
    """The columns TFMA reads, with empty cells filled (TFMA cannot slice on a missing value)."""
    wanted = [PREDICTION, LABEL, VERSION, VERSION_LABEL] + [name for spec in SLICES for name in spec]
    table = rows[list(dict.fromkeys(wanted))].copy()
    for name in table.columns:
        if table[name].dtype == object:
            table[name] = table[name].fillna(MISSING_TEXT)
        elif table[name].isna().any():
            table[name] = table[name].fillna(MISSING_NUMBER).astype("int64")
    return table


def _slice_parts(slice_key) -> tuple[int, str | None, str, bool]:
    """TFMA's ((column, value), ...) of a live slice -> (version, label or None, Evaluator-style name,
    whether it is the slice of rows missing one of its features)."""
    parts = dict(slice_key)
    version = int(parts.pop(VERSION))
    version_label = parts.pop(VERSION_LABEL, None)
    name = ", ".join(f"{column}={value}" for column, value in slice_key if column in parts) or "overall"
    missing = any(value in (MISSING_TEXT, MISSING_NUMBER) for value in parts.values())
    return version, version_label, name, missing


def compute(rows: pd.DataFrame, output_path: str) -> list[SliceQuality]:
    """Metrics of every live slice of `rows` (logged_predictions.JoinedWindow.rows); TFMA's
    own output is kept under `output_path`."""
    if rows.empty:
        return []
    with warnings.catch_warnings():
        # Precision and recall of a slice with one class divide by zero: NaN, reported as n/a.
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"tensorflow_model_analysis\.")
        result = tfma.analyze_raw_data(_table(rows), live_eval_config(), output_path=output_path)
    qualities = []
    for slice_key, outputs in result.slicing_metrics:
        values = outputs.get("", {}).get("", {})
        metrics = {}
        for name in METRIC_NAMES:
            value = values.get(name, {}).get("doubleValue")
            if value is not None and not math.isnan(float(value)):  # TFMA writes NaN as the text "NaN"
                metrics[name] = float(value)
        version, version_label, name, missing = _slice_parts(slice_key)
        qualities.append(SliceQuality(version, version_label, name, metrics, missing))
    return sorted(qualities, key=lambda q: (q.version, q.version_label or "", q.slice != "overall", q.slice))
