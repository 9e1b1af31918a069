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
    Feature("fare", tf.float32, "zscore", default=0.0),
    Feature("trip_miles", tf.float32, "zscore", default=0.0),
    Feature("trip_seconds", tf.int64, "zscore", default=0),
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
# Columns in the raw data that are neither a model input nor the label.
UNUSED_COLUMNS = ("trip_start_timestamp",)
# Ids reserved for values outside the vocabulary or the identity range (new companies,
# new payment types, a month 13).
OOV_BUCKETS = 1


def feature_types() -> dict[str, str]:
    """{name: "int" | "float" | "bytes"} of the raw features: how serving/clients' request
    encoding types a row's cells for this model."""
    return {f.name: "bytes" if f.dtype == tf.string else "int" if f.dtype.is_integer else "float" for f in FEATURES}


def vocabulary_name(feature: Feature) -> str:
    return feature.name + "_vocab"
