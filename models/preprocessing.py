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


def preprocessing_fn(inputs: dict) -> dict:
    outputs = {}
    for feature in F.FEATURES:
        value = fill_missing(inputs[feature.name], feature.default)
        if feature.kind == "zscore":
            outputs[feature.transformed_name] = tft.scale_to_z_score(tf.cast(value, tf.float32))
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
    fare = fill_missing(inputs["fare"], 0.0)
    tips = fill_missing(inputs[F.LABEL_KEY], 0.0)
    outputs[F.TRANSFORMED_LABEL_KEY] = big_tip_label(tips, fare)
    return outputs
