"""A Trainer run_fn whose export passes evaluation but breaks on real serving requests.

A classic export bug: serving_default parses the label too, as a required feature. TFMA
feeds labelled examples, so Evaluator is happy; a client never sends the label, so every
real request fails. The servability check has to catch it.
"""
from __future__ import annotations

import tensorflow as tf

from models import model as model_code
from models import signatures


def _export_requiring_label(model, transform_output, export_dir, metadata=None):
    root = tf.Module()
    root.tft_layer = transform_output.transform_features_layer()
    root.model_variables = list(model.variables)
    raw_spec = transform_output.raw_feature_spec()  # includes the label: the bug

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serving_default(examples):
        transformed = root.tft_layer(tf.io.parse_example(examples, raw_spec))
        return {signatures.OUTPUT_KEY: model({name: transformed[name] for name in model.input.keys()})}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        return root.tft_layer(tf.io.parse_example(examples, raw_spec))

    tf.saved_model.save(root, export_dir, signatures={
        "serving_default": serving_default.get_concrete_function(),
        "transform_features": transform_features.get_concrete_function()})


def run_fn(fn_args) -> None:
    """models.model.run_fn, exporting through the broken export above."""
    original, signatures.export = signatures.export, _export_requiring_label
    try:
        model_code.run_fn(fn_args)
    finally:
        signatures.export = original
