"""Seeding: the same rows, in whatever order ExampleGen wrote them, train the same model."""
from __future__ import annotations

import numpy as np
import pytest

from models import seeding

pytestmark = pytest.mark.timeout(120)


def test_rows_in_any_file_order_are_read_in_one_order():
    import tensorflow as tf

    rows = [f"row {i}".encode() for i in range(500)]
    shuffled = list(np.random.default_rng(7).permutation(rows))
    first = list(seeding.in_content_order(tf.data.Dataset.from_tensor_slices(rows)).as_numpy_iterator())
    second = list(seeding.in_content_order(tf.data.Dataset.from_tensor_slices(shuffled)).as_numpy_iterator())
    assert first == second and sorted(first) == sorted(rows)
    assert list(seeding.in_content_order(tf.data.Dataset.from_tensor_slices(rows[:0])).as_numpy_iterator()) == []


def test_seeded_weights_are_the_same_for_a_second_model_in_the_same_process():
    import tensorflow as tf

    def weights():
        seeding.seed_everything()
        return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4)]).get_weights()[0]

    assert np.array_equal(weights(), weights())
