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


def z_score(value: tf.Tensor) -> tf.Tensor:
    """(value - mean) / standard deviation over the data, as tft.scale_to_z_score, the statistics taken in float64.

    TFT computes each batch's statistics in the input's type and then merges the batches, and
    Beam sizes Transform's batches by how long they take: in float32 the statistics' last bits
    followed where the batches were cut (two Transform runs on the same rows gave z-scores up
    to 5e-7 apart). In float64 the batches' rounding stays near 1e-16, far below the float32
    the statistics are rounded to before use; subtraction and division are exact IEEE
    operations, so every value then comes out the same in any batch. One analyzer gives both
    moments (the means of x and x^2; the variance is their difference, exact enough in float64
    for values whose mean is not 10^4 standard deviations from 0), which keeps Transform as
    fast as with scale_to_z_score.
    """
    value = tf.cast(value, tf.float32)
    wide = tf.cast(value, tf.float64)
    moments = tft.mean(tf.stack([wide, wide * wide], axis=1), reduce_instance_dims=False)
    mean, variance = moments[0], tf.maximum(moments[1] - moments[0] * moments[0], 0.0)
    centred = value - tf.cast(mean, tf.float32)
    deviation = tf.cast(tf.sqrt(variance), tf.float32)
    return tf.where(deviation > 0, centred / deviation, centred)


def log1p(value: tf.Tensor) -> tf.Tensor:
    """log(1 + value) of a float32 tensor, each element's result independent of the batch it is in.

    TensorFlow's CPU log1p (and log) computes whole SIMD packets with one approximation and
    the elements left over at a batch's end with another, one ulp apart on about a fifth of
    values: the same row got another value in a batch of another size. Transform's batches
    are sized by time, so its output changed from run to run. Computed in float64 and rounded
    to float32, the two paths agree unless the float64 result lies within an ulp of a float32
    rounding boundary (about 2e-9 of values). log(1 + x) rather than log1p: TensorFlow Lite
    runs a float64 Log as a select TF op and has no float64 Log1p; 1 + x is exact in float64
    for every float32 x above 2^-29, and below that the result is off by at most 1.2e-16.
    """
    return tf.cast(tf.math.log(1.0 + tf.cast(value, tf.float64)), tf.float32)


def log_z_score(value: tf.Tensor) -> tf.Tensor:
    """z-score of log1p(value), negatives as 0: long tails stop squashing everyone else near 0."""
    return z_score(log1p(tf.maximum(tf.cast(value, tf.float32), 0.0)))


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
            outputs[feature.transformed_name] = z_score(value)
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
