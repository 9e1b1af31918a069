"""Seeding: the same rows, in whatever order and serialization they were written, train the same model."""
from __future__ import annotations

import numpy as np
import pytest

from models import seeding

pytestmark = pytest.mark.timeout(120)


def _example(values: dict, shuffled_keys: bool) -> bytes:
    """A serialized tf.Example; its features in sorted order, or in a random one as Transform writes them."""
    import tensorflow as tf

    names = sorted(values)
    if shuffled_keys:
        names = list(np.random.default_rng(len(names) + int(values["x"] * 7)).permutation(names))
    example = tf.train.Example()
    for name in names:
        value = values[name]
        if isinstance(value, float):
            example.features.feature[name].float_list.value.append(value)
        elif isinstance(value, int):
            example.features.feature[name].int64_list.value.append(value)
        else:
            example.features.feature[name].bytes_list.value.append(value)
    return example.SerializeToString()


def _parse(serialized):
    import tensorflow as tf

    return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([], tf.float32),
                                            "id": tf.io.FixedLenFeature([], tf.int64),
                                            "name": tf.io.FixedLenFeature([], tf.string)})


def _rows(records: list[bytes]) -> list[tuple]:
    import tensorflow as tf

    dataset = seeding.in_content_order(tf.data.Dataset.from_tensor_slices(tf.constant(records, tf.string)), _parse)
    return [(row["x"], row["id"], row["name"]) for row in dataset.as_numpy_iterator()]


def test_rows_in_any_order_and_any_serialization_are_read_in_one_order():
    values = [{"x": i / 3, "id": i % 7, "name": f"row {i}".encode()} for i in range(500)]
    first = _rows([_example(row, shuffled_keys=False) for row in values])
    # Another order, and other bytes for the same values (features in another order in each example).
    shuffled = list(np.random.default_rng(7).permutation(len(values)))
    second = _rows([_example(values[i], shuffled_keys=True) for i in shuffled])
    assert first == second
    assert sorted(first) == sorted((np.float32(row["x"]), row["id"], row["name"]) for row in values)
    assert first != sorted(first)  # mixed, not sorted by a value
    assert _rows([]) == []


def test_a_changed_value_changes_the_fingerprint():
    import tensorflow as tf

    features = {"x": tf.constant([1.0, 1.0, 1.0]), "id": tf.constant([1, 1, 2], tf.int64),
                "name": tf.constant([b"a", b"a", b"a"])}
    fingerprints = seeding.content_fingerprints(features).numpy()
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]
    with pytest.raises(TypeError, match="dense"):
        seeding.content_fingerprints({"x": tf.sparse.from_dense(tf.constant([[1.0]]))})


def test_seeded_weights_are_the_same_for_a_second_model_in_the_same_process():
    import tensorflow as tf

    def weights():
        seeding.seed_everything()
        return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4)]).get_weights()[0]

    assert np.array_equal(weights(), weights())
