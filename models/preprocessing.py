"""preprocessing_fn for TFX Transform: raw taxi trips -> model inputs and the big-tip label.

The same graph runs in training (Transform), evaluation (TFMA through the
`transform_features` signature) and serving, so training/serving skew from
re-implemented preprocessing cannot happen.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models import features as F


def fill_missing(value: tf.Tensor | tf.SparseTensor, default) -> tf.Tensor:
    """A [batch] dense tensor from a raw column whose cells may be empty."""
    if isinstance(value, tf.SparseTensor):
        dense_shape = [value.dense_shape[0], 1]
        value = tf.sparse.to_dense(
            tf.SparseTensor(value.indices, value.values, dense_shape),
            default_value=tf.constant(default, dtype=value.dtype))
    return tf.reshape(value, [-1])


def big_tip_label(tips: tf.Tensor, fare: tf.Tensor) -> tf.Tensor:
    """1 when the tip is more than BIG_TIP_SHARE of the fare."""
    return tf.cast(tips > fare * F.BIG_TIP_SHARE, tf.int64)


def log_z_score(value: tf.Tensor) -> tf.Tensor:
    """z-score of log1p(value), negatives as 0: long tails stop squashing everyone else near 0."""
    return tft.scale_to_z_score(tf.math.log1p(tf.maximum(tf.cast(value, tf.float32), 0.0)))


def derived_feature(feature: F.DerivedFeature, raw: dict, ids: dict) -> tf.Tensor:
    """One DerivedFeature from the filled raw values and the ids computed so far."""
    if feature.recipe == "ratio":
        numerator, denominator = (tf.cast(raw[name], tf.float32) for name in feature.sources)
        return log_z_score(numerator / tf.maximum(denominator, feature.floor) * feature.scale)
    if feature.recipe == "bucket":
        return tft.bucketize(raw[feature.sources[0]], feature.size)
    if feature.recipe == "cross":
        combined = tf.zeros_like(ids[feature.sources[0]])
        for name in feature.sources:  # mixed radix: each source's id is one digit
            combined = combined * F.id_count(name) + ids[name]
        return combined
    raise ValueError(f"models/features.py: derived feature {feature.name!r} has unknown recipe {feature.recipe!r}")


def preprocessing_fn(inputs: dict) -> dict:
    outputs, raw = {}, {}
    for feature in F.FEATURES:
        value = raw[feature.name] = fill_missing(inputs[feature.name], feature.default)
        if feature.kind == "zscore":
            outputs[feature.transformed_name] = tft.scale_to_z_score(tf.cast(value, tf.float32))
        elif feature.kind == "log_zscore":
            outputs[feature.transformed_name] = log_z_score(value)
        elif feature.kind == "bucket":
            outputs[feature.transformed_name] = tft.bucketize(value, feature.size)
        elif feature.kind == "vocab":
            text = value if value.dtype == tf.string else tf.strings.as_string(value)
            outputs[feature.transformed_name] = tft.compute_and_apply_vocabulary(
                text, top_k=feature.size, num_oov_buckets=F.OOV_BUCKETS,
                vocab_filename=F.vocabulary_name(feature))
        elif feature.kind == "identity":
            in_range = (value >= 0) & (value < feature.size)
            outputs[feature.transformed_name] = tf.where(in_range, value, tf.constant(feature.size, tf.int64))
        elif feature.kind == "hash":
            outputs[feature.transformed_name] = tf.strings.to_hash_bucket_fast(
                tf.strings.as_string(value), feature.size)
        else:
            raise ValueError(f"models/features.py: feature {feature.name!r} has unknown kind {feature.kind!r}")
    ids = {f.name: outputs[f.transformed_name] for f in F.FEATURES if not F.is_numeric(f)}
    for feature in F.DERIVED_FEATURES:
        ids[feature.name] = outputs[feature.transformed_name] = derived_feature(feature, raw, ids)
    fare = fill_missing(inputs["fare"], 0.0)
    tips = fill_missing(inputs[F.LABEL_KEY], 0.0)
    outputs[F.TRANSFORMED_LABEL_KEY] = big_tip_label(tips, fare)
    return outputs
