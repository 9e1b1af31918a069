"""The Evaluator's metrics computed with numpy over whole columns, as TFMA defines them.

TFMA computes a metric by feeding each (slice, example) pair through Beam combiners in
Python; this module computes the same numbers with one bincount per quantity over every
example of every slice at once. The definitions follow TFMA 0.47 exactly (the functions say
which part of TFMA each mirrors); `tests/integration/test_bulk_evaluator.py` holds every
point value to TFMA's within 1e-6 on every slice.

Shapes: for each metric an array (slices, 1 + buckets): column 0 on all of a slice's
examples, column 1 + j on the slice without jackknife bucket j (TFMA's delete-d samples,
from which it derives the 95% interval).

No library does this in bulk: TFMA's metric computations are combiners over single
examples, scikit-learn's metrics take one slice at a time and do not follow TFMA's
thresholds and histogram (so their values differ in the last digits).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

JACKKNIFE_BUCKETS = 20  # TFMA's _DEFAULT_NUM_JACKKNIFE_BUCKETS
HISTOGRAM_BUCKETS = 10_000  # TFMA's calibration histogram (DEFAULT_NUM_BUCKETS)
EPSILON = 1e-7  # TFMA's binary_confusion_matrices._EPSILON
DECISION_THRESHOLD = 0.5  # Precision, Recall, BinaryAccuracy without a threshold
# The metrics computed here, by the name TFMA writes them under.
NAMES = ("example_count", "binary_accuracy", "precision", "recall", "calibration", "mean_label",
         "mean_prediction", "auc", "slice_auc_shortfall")


@dataclasses.dataclass(frozen=True)
class Settings:
    num_thresholds: int  # the AUC's thresholds (coarse_auc.THRESHOLDS)
    floor: float  # the slice floor's AUC (slice_floor)
    min_examples: int  # examples of each class a slice needs for the floor to apply


def slice_membership(values: dict[str, np.ndarray], specs: list[tuple[str, ...]], n: int
                     ) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """(example index, slice index) pairs for every example in every slice, and each slice's key.

    `values` holds each slicing feature as an object array, None where an example has no
    value. A slice key is a tuple of (feature, value) sorted by feature, as TFMA's slicer
    makes it; () is the whole split. As in TFMA, an example is in no slice of a spec whose
    features it lacks.
    """
    example_index, slice_index, keys = [], [], []
    for spec in specs:
        present = np.ones(n, dtype=bool)
        for name in spec:
            present &= values[name] != None  # noqa: E711 (element-wise on an object array)
        rows = np.flatnonzero(present)
        if not spec:
            groups, labels = np.zeros(n, dtype=np.int64), [()]
        else:
            # One code per combination of values: factorise each feature, then their cross.
            code = np.zeros(len(rows), dtype=np.int64)
            uniques = []
            for name in spec:
                unique, inverse = _factorise(values[name][rows])
                uniques.append(unique)
                code = code * len(unique) + inverse
            combos, groups = np.unique(code, return_inverse=True)
            labels = []
            for combo in combos:
                parts, rest = [], int(combo)
                for name, unique in reversed(list(zip(spec, uniques))):
                    rest, index = divmod(rest, len(unique))
                    value = unique[index]
                    parts.append((name, value.item() if hasattr(value, "item") else value))
                labels.append(tuple(sorted(parts)))
        example_index.append(rows)
        slice_index.append(groups + len(keys))
        keys.extend(labels)
    return np.concatenate(example_index), np.concatenate(slice_index), keys


def _factorise(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, index of each row's value) of an object array of str, int or float."""
    sample = column[0] if len(column) else 0
    kind = str if isinstance(sample, str) else (float if isinstance(sample, float) else np.int64)
    return np.unique(column.astype(kind), return_inverse=True)


def _rebin_index(num_thresholds: int) -> np.ndarray:
    """For each of TFMA's calibration-histogram buckets, its bucket in the histogram rebinned to the
    AUC's thresholds (calibration_histogram.rebin with the thresholds binary_confusion_matrices gives it)."""
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = [-EPSILON] + inner + [1.0 + EPSILON]
    rebin_thresholds = np.array([t + EPSILON if t != 0 else t for t in thresholds])
    bucket = np.arange(HISTOGRAM_BUCKETS + 2)
    lower_edge = (bucket - 1) / HISTOGRAM_BUCKETS * (1.0 - 0.0) + 0.0
    lower_edge[0], lower_edge[-1] = -np.inf, np.inf  # the under- and overflow buckets
    # rebin walks the buckets in order and moves on at each threshold the bucket's edge reaches.
    return np.searchsorted(rebin_thresholds[1:], lower_edge, side="right")


def _histogram_bucket(predictions: np.ndarray) -> np.ndarray:
    """_CalibrationHistogramCombiner._bucket_index: truncated, with under- and overflow buckets."""
    index = (predictions - 0.0) / 1.0 * HISTOGRAM_BUCKETS + 1
    return np.floor(np.clip(index, 0, HISTOGRAM_BUCKETS + 1)).astype(np.int64)


def _divide(numerator: np.ndarray, denominator: np.ndarray, positive_only: bool = True) -> np.ndarray:
    """numerator / denominator, NaN where TFMA gives NaN (denominator <= 0, or close to 0 for the means)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result = numerator / denominator
    bad = denominator <= 0 if positive_only else np.isclose(denominator, 0.0)
    return np.where(bad, np.nan, result)


def _auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """TFMA's AUC (ROC, interpolation) from rebinned histograms, over the last axis."""
    # Confusion matrices at each threshold: tp/fp count the buckets at or above it.
    tp = np.cumsum(positives[..., ::-1], axis=-1)[..., ::-1]
    fp = np.cumsum(negatives[..., ::-1], axis=-1)[..., ::-1]
    fn = positives.sum(axis=-1, keepdims=True) - tp
    tn = negatives.sum(axis=-1, keepdims=True) - fp
    # The last threshold (1 + epsilon) matches nothing: TFMA sets it so explicitly.
    fn[..., -1], tn[..., -1] = tp[..., 0], fp[..., 0]
    tp[..., -1], fp[..., -1] = 0.0, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / (tp + fn)
        fp_rate = fp / (fp + tn)
    heights = (recall[..., :-1] + recall[..., 1:]) / 2.0
    return np.nansum((fp_rate[..., :-1] - fp_rate[..., 1:]) * heights, axis=-1)


def model_metrics(predictions: np.ndarray, labels: np.ndarray, buckets: np.ndarray, example_index: np.ndarray,
                  slice_index: np.ndarray, num_slices: int, settings: Settings) -> dict[str, np.ndarray]:
    """Every metric of NAMES for one model's predictions, shape (slices, 1 + JACKKNIFE_BUCKETS)."""
    J = JACKKNIFE_BUCKETS
    label, prediction = labels[example_index], predictions[example_index]
    cell = slice_index * J + buckets[example_index]
    size = num_slices * J

    def per_cell(weights: np.ndarray | None) -> np.ndarray:
        parts = np.bincount(cell, weights=weights, minlength=size).astype(np.float64).reshape(num_slices, J)
        # Column 0 the whole slice, then each sample without one bucket.
        total = parts.sum(axis=1, keepdims=True)
        return np.concatenate([total, total - parts], axis=1)

    positive = label == 1.0  # TFMA's confusion matrix at a threshold, fractional labels on
    above = prediction > DECISION_THRESHOLD
    count, label_sum, prediction_sum = per_cell(None), per_cell(label), per_cell(prediction)
    tp, fp = per_cell((positive & above).astype(np.float64)), per_cell((~positive & above).astype(np.float64))
    tn, fn = per_cell((~positive & ~above).astype(np.float64)), per_cell((positive & ~above).astype(np.float64))

    # AUC: histogram of labels and examples per slice, jackknife bucket and rebinned threshold.
    rebin = _rebin_index(settings.num_thresholds)[_histogram_bucket(prediction)]
    R = settings.num_thresholds
    hist_cell = cell * R + rebin
    pos = np.bincount(hist_cell, weights=label, minlength=size * R).reshape(num_slices, J, R)
    examples = np.bincount(hist_cell, minlength=size * R).astype(np.float64).reshape(num_slices, J, R)
    neg = examples - pos
    pos_total, neg_total = pos.sum(axis=1, keepdims=True), neg.sum(axis=1, keepdims=True)
    auc = _auc(np.concatenate([pos_total, pos_total - pos], axis=1),
               np.concatenate([neg_total, neg_total - neg], axis=1))

    mean_label = _divide(label_sum, count, positive_only=False)
    # The slice floor's shortfall (slice_floor.shortfall), on the same AUC.
    positives = count * mean_label
    gated = (np.round(positives) >= settings.min_examples) & (np.round(count - positives) >= settings.min_examples)
    return {
        "example_count": count,
        "binary_accuracy": _divide(tp + tn, tp + fp + tn + fn),
        "precision": _divide(tp, tp + fp),
        "recall": _divide(tp, tp + fn),
        "calibration": _divide(prediction_sum, label_sum, positive_only=False),
        "mean_label": mean_label,
        "mean_prediction": _divide(prediction_sum, count, positive_only=False),
        "auc": auc,
        "slice_auc_shortfall": np.where(gated, np.maximum(0.0, settings.floor - auc), 0.0),
    }


def jackknife(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sample mean, standard error) per slice from a (slices, 1 + buckets) array, as TFMA's
    _JackknifeSampleCombineFn computes them: pseudo-values, their spread / sqrt(buckets)."""
    point, samples = values[:, 0], values[:, 1:]
    J = samples.shape[1]
    pseudo = point[:, None] * J - samples * (J - 1)
    with np.errstate(invalid="ignore"):
        std_error = np.std(pseudo, axis=1, ddof=1) / math.sqrt(J)
    return samples.mean(axis=1), std_error


def interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% (lower, upper) bounds TFMA writes for a jackknifed metric (math_util's t interval)."""
    from scipy import stats
    mean, std_error = jackknife(values)
    t = stats.t.ppf(0.975, values.shape[1] - 2)
    return mean - std_error * t, mean + std_error * t


def complete_samples(count: np.ndarray) -> np.ndarray:
    """Per slice, whether every delete-d sample holds an example: TFMA gives a slice an interval
    only then ("CI not computed because only N samples were non-empty")."""
    return (count[:, 1:] > 0).all(axis=1)
