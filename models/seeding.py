"""One seed for every random choice of training and tuning, and one order for the rows, so two runs on the
same input train the same model.

The data split needs none (ExampleGen splits by hashing each row). What does need one:
the initial weights of every layer, any shuffling and dropout (TensorFlow's global seed
and Keras' per-layer seeds, numpy, Python's `random`), KerasTuner's choice of trials, and
the order Trainer reads rows in (in_content_order).
Measured on CPU with the shipped data: two Trainer runs on the same Transform output give
bit-equal predictions, in one process or two, and `tf.config.experimental.enable_op_determinism()`
changes no bit of them, so it is not switched on (it is process-wide, and Evaluator runs in
the same process).

The seed is part of the code, not a setting: changing it changes models/, which is in
Transform's, Tuner's and Trainer's cache key, and it is recorded with every run.
"""
from __future__ import annotations

SEED = 0


def seed_everything(seed: int = SEED) -> None:
    """Seed Python's `random`, numpy and TensorFlow (which seeds Keras' initializers) at once."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


def content_fingerprints(features: dict):
    """One int64 per row of `features` ({name: dense tensor, rows first}) from the row's values alone.

    Each feature's rows are fingerprinted (farmhash64 of the values' bytes as they lie in
    memory, little-endian on x86 and ARM), then the row's fingerprints in the order of the names.
    """
    import tensorflow as tf

    columns = []
    for name in sorted(features):
        if not isinstance(features[name], tf.Tensor):
            raise TypeError(f"feature {name!r} is a {type(features[name]).__name__}; rows are ordered by "
                            "dense features only")
        columns.append(tf.fingerprint(features[name]))
    return tf.bitcast(tf.fingerprint(tf.concat(columns, axis=1)), tf.int64)


def in_content_order(records, parse):
    """`records` (a tf.data.Dataset of serialized examples) as parsed rows, ordered by their values.

    `parse` turns a batch of serialized examples into {name: dense tensor}. The result is a
    dataset of rows ({name: value}) sorted by content_fingerprints: the same rows give the same
    sequence whatever order they come in (the pipeline's ExampleGen writes one order, TFX's
    stock ExampleGen another at every run). Not by the serialized bytes: Transform writes each
    example's features in hash-map order, which differs from row to row and run to run
    (measured: all 10,036 transformed training rows of the shipped data had other bytes in a
    second Transform run on the same input, the same values in them), so ordered by bytes the
    same rows trained another model at every run. The rows are read into memory once;
    Trainer's dataset caches them anyway.
    """
    import tensorflow as tf

    chunks = list(records.batch(1 << 16))
    features = parse(tf.concat(chunks, axis=0) if chunks else tf.constant([], tf.string))
    order = tf.argsort(content_fingerprints(features), stable=True)
    return tf.data.Dataset.from_tensor_slices({name: tf.gather(value, order) for name, value in features.items()})
