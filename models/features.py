"""The one table of the taxi features: names, raw types, how each is preprocessed.

Everything else (preprocessing, model, serving signatures, clients, tests) reads this
module, so a feature is added or retyped here and nowhere else.
"""
from __future__ import annotations

import dataclasses
from typing import Union

import tensorflow as tf

LABEL_KEY = "tips"
# The label the model learns: the tip was more than this share of the fare.
BIG_TIP_SHARE = 0.2
TRANSFORMED_LABEL_KEY = "big_tip"


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    dtype: tf.dtypes.DType
    # How preprocessing_fn turns it into model input:
    #   "zscore": numeric, scaled to mean 0 / stddev 1
    #   "log_zscore": numeric with a long tail (fares of $700 beside $8), log1p then z-score
    #   "bucket": numeric, cut into `size` quantile buckets
    #   "vocab":  categorical, mapped to ids through a vocabulary of its `size` most frequent values
    #   "identity": small integer codes already in [0, size), used as ids directly
    #   "hash":   categorical with many values, hashed into `size` buckets
    # identity and hash need no pass over the data, which keeps Transform fast.
    kind: str
    size: int = 0
    # Value used where the raw cell is empty. Serving clients fill the same value, so a
    # row with gaps gets the same prediction through every signature.
    default: Union[int, float, str] = 0

    @property
    def transformed_name(self) -> str:
        return self.name + "_xf"


FEATURES: tuple[Feature, ...] = (
    Feature("fare", tf.float32, "log_zscore", default=0.0),
    Feature("trip_miles", tf.float32, "log_zscore", default=0.0),
    Feature("trip_seconds", tf.int64, "log_zscore", default=0),
    Feature("pickup_latitude", tf.float32, "bucket", 10, default=0.0),
    Feature("pickup_longitude", tf.float32, "bucket", 10, default=0.0),
    Feature("dropoff_latitude", tf.float32, "bucket", 10, default=0.0),
    Feature("dropoff_longitude", tf.float32, "bucket", 10, default=0.0),
    Feature("trip_start_hour", tf.int64, "identity", 24),
    Feature("trip_start_day", tf.int64, "identity", 8),
    Feature("trip_start_month", tf.int64, "identity", 13),
    Feature("pickup_community_area", tf.int64, "identity", 78),
    Feature("dropoff_community_area", tf.int64, "identity", 78),
    Feature("pickup_census_tract", tf.int64, "hash", 500),
    Feature("dropoff_census_tract", tf.int64, "hash", 500),
    Feature("payment_type", tf.string, "vocab", 10, default=""),
    Feature("company", tf.string, "vocab", 100, default=""),
)

FEATURES_BY_NAME = {feature.name: feature for feature in FEATURES}
# Columns in the raw data that are neither a model input nor the label. The timestamp
# would add only the year (trip_start_day is already the day of week, and the data gate
# checks they agree): on the card slice the year alone ranks big tips no better than chance
# (AUC 0.50 on the shipped data), and a new raw input would change every client's request.
UNUSED_COLUMNS = ("trip_start_timestamp",)
# Ids reserved for values outside the vocabulary or the identity range (new companies,
# new payment types, a month 13).
OOV_BUCKETS = 1


@dataclasses.dataclass(frozen=True)
class DerivedFeature:
    """A model input computed in preprocessing_fn from raw features, never sent by clients.

    recipe "ratio": sources[0] / sources[1] * scale, the divisor floored at `floor` (a trip
    of 0 miles has no fare per mile), log1p and z-scored as kind "log_zscore";
    recipe "cross": one id per combination of the sources' ids (each source an id feature
    above or in this table, in order), so the model can learn what a combination means on
    its own (a company's card riders, a pickup grid cell); `size` = product of the sources'
    id counts;
    recipe "bucket": quantile buckets of sources[0], so a numeric's effect need not be monotone.
    """
    name: str
    recipe: str
    sources: tuple[str, ...]
    kind: str  # how the model reads it, as Feature.kind
    size: int = 0
    scale: float = 1.0
    floor: float = 0.0

    @property
    def transformed_name(self) -> str:
        return self.name + "_xf"


def id_count(name: str) -> int:
    """How many ids an id feature (raw or derived) can take, out-of-vocabulary ids included."""
    feature = FEATURES_BY_NAME.get(name) or DERIVED_BY_NAME[name]
    return feature.size + OOV_BUCKETS


DERIVED_FEATURES: tuple[DerivedFeature, ...] = (
    # What a trip costs per mile and how fast it went: flat-rate, airport and stuck-in-traffic
    # trips tip differently from metered ones of the same fare.
    DerivedFeature("fare_per_mile", "ratio", ("fare", "trip_miles"), "log_zscore", floor=0.1),
    DerivedFeature("speed_mph", "ratio", ("trip_miles", "trip_seconds"), "log_zscore", scale=3600.0, floor=60.0),
    DerivedFeature("fare_bucket", "bucket", ("fare",), "bucket", 20),
    # Geography: a grid cell of each end. (Community area pairs, hashed into 1,000 routes, and
    # day x hour were tried too: they changed nothing on the shipped data's eval split.)
    DerivedFeature("pickup_cell", "cross", ("pickup_latitude", "pickup_longitude"), "cross", 11 * 11),
    DerivedFeature("dropoff_cell", "cross", ("dropoff_latitude", "dropoff_longitude"), "cross", 11 * 11),
    # Companies differ in how their card terminals suggest tips; cash never records one.
    DerivedFeature("payment_company", "cross", ("payment_type", "company"), "cross", 11 * 101),
    DerivedFeature("payment_hour", "cross", ("payment_type", "trip_start_hour"), "cross", 11 * 25),
)
DERIVED_BY_NAME = {feature.name: feature for feature in DERIVED_FEATURES}
# Everything the model reads, in order: the raw features' transforms, then the derived ones.
MODEL_INPUTS: tuple[Union[Feature, DerivedFeature], ...] = FEATURES + DERIVED_FEATURES
# The id feature whose value picks the model's output head (see models/model.py).
HEAD_FEATURE = "payment_type"


def is_numeric(feature: Union[Feature, DerivedFeature]) -> bool:
    """Whether the model reads the feature as one float (else as an id below its id_count)."""
    return feature.kind in ("zscore", "log_zscore")


def feature_types() -> dict[str, str]:
    """{name: "int" | "float" | "bytes"} of the raw features: how serving/clients' request
    encoding types a row's cells for this model."""
    return {f.name: "bytes" if f.dtype == tf.string else "int" if f.dtype.is_integer else "float" for f in FEATURES}


def vocabulary_name(feature: Feature) -> str:
    return feature.name + "_vocab"
