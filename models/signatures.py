"""Serving signatures of the exported SavedModel.

- serving_default: serialized tf.Example of raw features (no label) -> tip_probability.
  What TF Serving's predict/classify clients and TFX's tooling send.
- serving_raw: one named tensor per raw feature -> tip_probability. For JSON clients that
  would rather send {"fare": [12.5], ...} than base64 tf.Examples. Empty cells are sent as
  the feature's default from models/features.py, which is what preprocessing fills in.
  Also converted to TensorFlow Lite into assets.extra/ (models/edge_export.py).
- transform_features: serialized tf.Example with the label -> transformed features, so
  TFMA can compute the label the same way training did.
- classification: serialized tf.Example `inputs` -> `classes` ("0", "1": no big tip, big
  tip) and their `scores`, for TF Serving's Classify API (REST :classify).
- regression: serialized tf.Example `inputs` -> `outputs` (the tip probability), for TF
  Serving's Regress API (REST :regress).

tf.saved_model.save marks every signature "tensorflow/serving/predict"; the last two get
their classify/regress method names written into saved_model.pb after saving, so the real
tensorflow_model_server accepts them even with --enable_signature_method_name_check.
"""
from __future__ import annotations

import contextlib
import os

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils

from models import edge_export
from models import features as F

OUTPUT_KEY = "tip_probability"
CLASSIFICATION_SIGNATURE, REGRESSION_SIGNATURE = "classification", "regression"
# The signature of named raw-feature tensors; also the one converted to TensorFlow Lite.
RAW_SIGNATURE = "serving_raw"
# Class labels of the classification signature, in score order: the values of the label
# the model learns (big_tip), so they join with evaluation data as they are.
CLASS_LABELS = ("0", "1")


def _as_single_value_sparse(value: tf.Tensor) -> tf.SparseTensor:
    """[batch] dense -> [batch, 1] sparse, the form the raw schema's optional features take."""
    rows = tf.range(tf.shape(value, out_type=tf.int64)[0])
    indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
    return tf.SparseTensor(indices, value, tf.stack([tf.size(value, out_type=tf.int64), 1]))


def export(model: tf.keras.Model, transform_output: tft.TFTransformOutput, export_dir: str,
           metadata: dict[str, str] | None = None) -> None:
    """Save `model` with the three signatures; `metadata` maps file names in assets.extra/ to text."""
    # The saved root is a plain tf.Module holding the weights and the transform layer, not the
    # Keras model: saving a Keras model traces every layer's call again (about 6 s here), and
    # nothing reads those traces; the signatures below are the whole serving interface.
    root = tf.Module()
    root.tft_layer = transform_output.transform_features_layer()
    root.model_variables = list(model.variables)
    model_input_names = list(model.input.keys()) if isinstance(model.input, dict) else model.input_names
    raw_spec = transform_output.raw_feature_spec()
    serving_spec = {name: spec for name, spec in raw_spec.items() if name != F.LABEL_KEY}

    def predict_from_raw(raw: dict) -> dict:
        transformed = root.tft_layer(raw)
        probability = model({name: transformed[name] for name in model_input_names})
        return {OUTPUT_KEY: probability}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serving_default(examples):
        return predict_from_raw(tf.io.parse_example(examples, serving_spec))

    named_inputs = {feature.name: tf.TensorSpec([None], feature.dtype, name=feature.name) for feature in F.FEATURES}

    @tf.function(autograph=False, input_signature=[named_inputs])
    def serving_raw(features):
        return predict_from_raw({name: _as_single_value_sparse(value) for name, value in features.items()})

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        return root.tft_layer(tf.io.parse_example(examples, raw_spec))

    # TF Serving's Classify/Regress feed serialized examples to an input named `inputs`
    # and read outputs named `classes`/`scores` and `outputs` (signature_constants).
    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classification(inputs):
        probability = predict_from_raw(tf.io.parse_example(inputs, serving_spec))[OUTPUT_KEY]
        scores = tf.concat([1.0 - probability, probability], axis=1)
        classes = tf.tile(tf.constant([CLASS_LABELS]), [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regression(inputs):
        probability = predict_from_raw(tf.io.parse_example(inputs, serving_spec))[OUTPUT_KEY]
        return {"outputs": tf.reshape(probability, [-1])}

    with _without_keras_traces():
        tf.saved_model.save(root, export_dir, signatures={
            "serving_default": serving_default.get_concrete_function(),
            RAW_SIGNATURE: serving_raw.get_concrete_function(),
            "transform_features": transform_features.get_concrete_function(),
            CLASSIFICATION_SIGNATURE: classification.get_concrete_function(),
            REGRESSION_SIGNATURE: regression.get_concrete_function(),
        })
    _set_method_names(export_dir, {CLASSIFICATION_SIGNATURE: tf.saved_model.CLASSIFY_METHOD_NAME,
                                   REGRESSION_SIGNATURE: tf.saved_model.REGRESS_METHOD_NAME})
    # Small JSON files beside the model (hyperparameters, ...) for model cards and lineage.
    extra = os.path.join(export_dir, "assets.extra")
    tf.io.gfile.makedirs(extra)
    for name, text in (metadata or {}).items():
        with tf.io.gfile.GFile(os.path.join(extra, name), "w") as out:
            out.write(text)
    # The edge copy goes into the same version directory, so Pusher ships both in one move.
    edge_export.write(export_dir, RAW_SIGNATURE)


def _without_keras_traces() -> contextlib.AbstractContextManager:
    """Save without Keras' traces of the transform layer's call (most of the save's time).

    TFT's transform layer is a Keras model, so saving the root makes Keras trace its call
    functions for a Keras reload that nothing here does: the signatures are what serves, and
    the layer's tables and assets stay tracked as ordinary attributes. The switch is tf_keras'
    own (what `model.save(save_traces=False)` sets), not public API: if it moves, the save
    falls back to tracing.
    """
    try:
        from tf_keras.src.saving.legacy.saved_model import utils as keras_saving
    except ImportError:
        return contextlib.nullcontext()
    return keras_saving.keras_option_scope(save_traces=False, in_tf_saved_model_scope=False)


def _set_method_names(export_dir: str, method_names: dict[str, str]) -> None:
    """Rewrite the method_name of the named signatures in saved_model.pb.

    tf.saved_model.save has no way to set it (TF 2.16 hard-codes the predict method); the
    SavedModel proto is rewritten in place and its fingerprint recomputed to match.
    """
    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel.FromString(tf.io.gfile.GFile(path, "rb").read())
    for meta_graph in saved_model.meta_graphs:
        for name, method_name in method_names.items():
            meta_graph.signature_def[name].method_name = method_name
    with tf.io.gfile.GFile(path, "wb") as out:
        out.write(saved_model.SerializeToString(deterministic=True))
    fingerprinting_utils.write_fingerprint(export_dir)
