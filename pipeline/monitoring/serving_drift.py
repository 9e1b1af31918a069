"""Serving drift: the window's logged requests against the training data of the version serving them.

The same measure as the pipeline's skew check (pipeline/data_validation/drift_skew_check.py):
the schema's skew comparators, L-infinity from TFDV's validate_statistics for categorical
features, Jensen-Shannon divergence on 50-bucket quantile histograms for numeric ones
(pipeline/data_validation/drift.py), thresholds from the schema. The window's statistics
come from TFDV over the tf.Examples the joiner wrote to a TFRecord file while it read the
log (logged_predictions.join_window): Beam streams the file, so memory does not grow with
the window. Every comparator's value is kept, over its threshold or not, for the report
and the Prometheus series taxi_serving_feature_drift / taxi_serving_feature_drift_threshold.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # drift.py imports TFDV; the trigger policy and the report only read the results
    from pipeline.data_validation.drift import Distance


@dataclasses.dataclass
class ServingDrift:
    version: int | None  # whose training statistics were the reference
    rows: int  # logged examples the window's statistics cover
    distances: list[Distance]  # one per feature with a skew comparator in the schema
    note: str | None = None  # why nothing was measured

    @property
    def over(self) -> list[Distance]:
        return [d for d in self.distances if d.exceeded]

    @property
    def measured(self) -> list[Distance]:
        return [d for d in self.distances if d.value is not None]

    def largest(self) -> Distance | None:
        """The feature nearest its threshold (or furthest past it): thresholds differ per feature."""
        return max(self.measured, key=lambda d: d.value / d.threshold if d.threshold else float("inf"), default=None)

    def summary(self) -> str:
        if self.note:
            return f"serving drift: not measured ({self.note})"
        text = f"serving drift: {len(self.over)} of {len(self.distances)} features over threshold"
        largest = self.largest()
        if largest is not None:
            relation = ">" if largest.exceeded else "<="
            text += f" (largest: {largest.feature} {largest.value:.3f} {relation} {largest.threshold:g})"
        unmeasured = len(self.distances) - len(self.measured)
        if unmeasured:
            text += f"; {unmeasured} not measurable (no values on one side)"
        return text + f"; {self.rows} logged rows against version {self.version}'s training data"

    def as_dict(self) -> dict:
        return {"reference_version": self.version, "rows": self.rows, "note": self.note, "summary": self.summary(),
                "features": [{"feature": d.feature, "comparator": d.comparator, "value": d.value,
                              "threshold": d.threshold, "exceeded": d.exceeded} for d in self.distances]}


def not_measured(note: str, rows: int = 0) -> ServingDrift:
    return ServingDrift(None, rows, [], note)


def measure(examples_path: str, rows: int, version: int, training_statistics: str, schema_path: str) -> ServingDrift:
    """The window's tf.Examples (a TFRecord file) against `version`'s train-split statistics (a FeatureStats.pb)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import statistics_pb2
    from tfx.utils import io_utils

    from pipeline.data_validation import drift
    from pipeline.data_validation.statistics_io import load_schema, stats_options

    listing = statistics_pb2.DatasetFeatureStatisticsList()
    listing.ParseFromString(io_utils.read_bytes_file(training_statistics))
    current = tfdv.generate_statistics_from_tfrecord(examples_path, stats_options=stats_options()).datasets[0]
    distances = drift.measure(current, listing.datasets[0], load_schema(schema_path), "skew",
                              "the window's requests", f"version {version}'s training data")
    return ServingDrift(version, rows, distances)
