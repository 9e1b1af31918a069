"""Predict raw CSV rows through both serving signatures of a loaded SavedModel."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models import features as F
from models.signatures import OUTPUT_KEY
from serving.clients.request_encoding import row_to_example, rows_to_named_features

TYPES = F.feature_types()
DEFAULTS = {feature.name: feature.default for feature in F.FEATURES}


def predict_both_ways(loaded, rows: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities from serving_default, probabilities from serving_raw) for `rows`."""
    serialized = tf.constant([row_to_example(row, TYPES).SerializeToString() for row in rows])
    from_examples = loaded.signatures["serving_default"](examples=serialized)[OUTPUT_KEY].numpy()
    named = rows_to_named_features(rows, TYPES, DEFAULTS)
    from_named = loaded.signatures["serving_raw"](
        **{feature.name: tf.constant(named[feature.name], feature.dtype) for feature in F.FEATURES})[OUTPUT_KEY].numpy()
    return from_examples, from_named
