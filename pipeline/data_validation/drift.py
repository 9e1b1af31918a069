"""Drift (newest span vs the previous one) and skew (training vs serving data) per feature.

The comparators and thresholds are the ones declared in schema/schema.pbtxt. L-infinity
distances of categorical features come from TFDV's validate_statistics. For numeric
features TFDV's Jensen-Shannon divergence is estimated on equal-width histograms, which
a single outlier stretches: a 500-row sample of a span measured 0.67 against the span
itself on trip_miles. The divergence is computed here on the 50-bucket quantile
histograms of the same statistics instead (same sample: 0.04). Every comparator's value
is recorded, over its threshold or not.
"""
from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.utils import io_utils

L_INFINITY, JENSEN_SHANNON, ROW_RATIO = "L-infinity", "Jensen-Shannon divergence", "row count ratio"


@dataclasses.dataclass
class Distance:
    kind: str  # "drift", "skew" or "volume"
    feature: str  # "" for the dataset as a whole (volume)
    comparator: str
    value: float | None  # None: not measurable (no values on one side)
    threshold: float  # the largest allowed value; for volume the smallest allowed ratio
    current: str  # what was measured, e.g. "span 5"
    reference: str  # what it was measured against, e.g. "span 4"
    exceeded: bool
    max_ratio: float | None = None  # volume only: the largest allowed ratio


def quantile_buckets(feature: statistics_pb2.FeatureNameStatistics) -> list[tuple[float, float, float]]:
    for histogram in feature.num_stats.histograms:
        if histogram.type == statistics_pb2.Histogram.QUANTILES:
            return [(b.low_value, b.high_value, b.sample_count) for b in histogram.buckets if b.sample_count > 0]
    return []


def cdf(buckets: list[tuple[float, float, float]], points: np.ndarray) -> np.ndarray:
    """Share of the values at or below each point; uniform within a bucket, point masses kept."""
    low, high, count = (np.array(column) for column in zip(*buckets))
    width = np.where(high > low, high - low, 1.0)
    inside = np.clip((points[:, None] - low[None, :]) / width[None, :], 0.0, 1.0)
    inside = np.where(high[None, :] > low[None, :], inside, (points[:, None] >= high[None, :]).astype(float))
    return inside @ count / count.sum()


def quantile_jensen_shannon(current: statistics_pb2.FeatureNameStatistics,
                            reference: statistics_pb2.FeatureNameStatistics) -> float | None:
    """Jensen-Shannon divergence (bits, 0..1) of two numeric features from their quantile histograms."""
    a, b = quantile_buckets(current), quantile_buckets(reference)
    if not a or not b:
        return None
    points = np.unique([edge for low, high, _ in a + b for edge in (low, high)])
    p = np.clip(np.diff(np.concatenate([[0.0], cdf(a, points), [1.0]])), 0.0, None)
    q = np.clip(np.diff(np.concatenate([[0.0], cdf(b, points), [1.0]])), 0.0, None)
    middle = (p + q) / 2

    def kullback_leibler(x: np.ndarray) -> float:
        used = x > 0
        return float(np.sum(x[used] * np.log2(x[used] / middle[used])))

    return max(0.0, 0.5 * kullback_leibler(p) + 0.5 * kullback_leibler(q))


def _features(statistics: statistics_pb2.DatasetFeatureStatistics) -> dict[str, statistics_pb2.FeatureNameStatistics]:
    return {".".join(f.path.step) or f.name: f for f in statistics.features}


def _comparator(feature: schema_pb2.Feature, kind: str) -> schema_pb2.FeatureComparator | None:
    field = "drift_comparator" if kind == "drift" else "skew_comparator"
    return getattr(feature, field) if feature.HasField(field) else None


def _tfdv_infinity_norms(current, reference, schema: schema_pb2.Schema, kind: str) -> dict[str, float]:
    """L-infinity distances TFDV measures for the categorical comparators of the schema."""
    categorical_only = copy.deepcopy(schema)
    for feature in categorical_only.feature:
        for field in ("drift_comparator", "skew_comparator"):
            if feature.HasField(field) and not getattr(feature, field).HasField("infinity_norm"):
                feature.ClearField(field)
    categorical_only.ClearField("dataset_constraints")

    def listing(statistics):
        return statistics_pb2.DatasetFeatureStatisticsList(datasets=[statistics])

    if kind == "drift":
        anomalies = tfdv.validate_statistics(listing(current), categorical_only,
                                             previous_statistics=listing(reference))
    else:  # skew: the training statistics are the reference, the serving ones are compared with them
        anomalies = tfdv.validate_statistics(listing(reference), categorical_only,
                                             serving_statistics=listing(current))
    values = {}
    for info in anomalies.drift_skew_info:
        measurements = info.drift_measurements if kind == "drift" else info.skew_measurements
        for measurement in measurements:
            values[".".join(info.path.step)] = measurement.value
    return values


def measure(current: statistics_pb2.DatasetFeatureStatistics, reference: statistics_pb2.DatasetFeatureStatistics,
            schema: schema_pb2.Schema, kind: str, current_name: str, reference_name: str) -> list[Distance]:
    """Every comparator of `kind` ("drift" or "skew") in the schema, measured."""
    infinity_norms = _tfdv_infinity_norms(current, reference, schema, kind)
    now, before = _features(current), _features(reference)
    distances = []
    for feature in schema.feature:
        comparator = _comparator(feature, kind)
        if comparator is None:
            continue
        if comparator.HasField("infinity_norm"):
            name, threshold = L_INFINITY, comparator.infinity_norm.threshold
            value = infinity_norms.get(feature.name)
        else:
            name, threshold = JENSEN_SHANNON, comparator.jensen_shannon_divergence.threshold
            value = (quantile_jensen_shannon(now[feature.name], before[feature.name])
                     if feature.name in now and feature.name in before else None)
        distances.append(Distance(kind, feature.name, name, value, threshold, current_name, reference_name,
                                  exceeded=value is not None and value > threshold))
    if kind == "drift" and schema.dataset_constraints.HasField("num_examples_drift_comparator"):
        limits = schema.dataset_constraints.num_examples_drift_comparator
        ratio = current.num_examples / max(reference.num_examples, 1)
        low = limits.min_fraction_threshold if limits.HasField("min_fraction_threshold") else 0.0
        high = limits.max_fraction_threshold if limits.HasField("max_fraction_threshold") else None
        distances.append(Distance("volume", "", ROW_RATIO, ratio, low, current_name, reference_name,
                                  exceeded=ratio < low or (high is not None and ratio > high), max_ratio=high))
    return distances


def write_distances(path: str, distances: list[Distance], notes: list[str]) -> None:
    io_utils.write_string_file(path, json.dumps(
        {"distances": [dataclasses.asdict(d) for d in distances], "notes": notes}, indent=1))


def read_distances(path: str) -> tuple[list[Distance], list[str]]:
    record = json.loads(io_utils.read_string_file(path))
    return [Distance(**item) for item in record["distances"]], record["notes"]
