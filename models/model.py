"""The Keras model and TFX Trainer's run_fn.

A small wide-and-deep-style network: each categorical input gets an embedding, numeric
inputs go in as they are, and two dense layers give the big-tip probability.
"""
from __future__ import annotations

import dataclasses
import json

import tensorflow as tf
import tensorflow_transform as tft

from models import features as F
from models import signatures

# The pipeline passes hyperparameters to run_fn under this key of Trainer's custom_config.
HYPERPARAMETERS_KEY = "hyperparameters"


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    learning_rate: float = 0.005
    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    batch_size: int = 64

    @classmethod
    def from_dict(cls, values: dict | None) -> "Hyperparameters":
        values = dict(values or {})
        unknown = set(values) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown hyperparameters {sorted(unknown)}; known: "
                             f"{[field.name for field in dataclasses.fields(cls)]}")
        if isinstance(values.get("hidden_units"), str):  # "64,32", as the tuner's search space writes it
            values["hidden_units"] = [int(units) for units in values["hidden_units"].split(",") if units.strip()]
        if "hidden_units" in values:
            values["hidden_units"] = tuple(values["hidden_units"])
        return cls(**values)


def build_model(hparams: Hyperparameters) -> tf.keras.Model:
    inputs, encoded = {}, []
    for feature in F.FEATURES:
        name = feature.transformed_name
        if feature.kind == "zscore":
            inputs[name] = tf.keras.Input(shape=(), name=name, dtype=tf.float32)
            encoded.append(tf.keras.layers.Reshape((1,))(inputs[name]))
        else:
            inputs[name] = tf.keras.Input(shape=(), name=name, dtype=tf.int64)
            # Every categorical kind gives ids below size + OOV_BUCKETS (see features.py).
            embedding = tf.keras.layers.Embedding(feature.size + F.OOV_BUCKETS, hparams.embedding_dim)
            encoded.append(embedding(inputs[name]))
    hidden = tf.keras.layers.Concatenate()(encoded)
    for units in hparams.hidden_units:
        hidden = tf.keras.layers.Dense(units, activation="relu")(hidden)
    output = tf.keras.layers.Dense(1, activation="sigmoid", name="tip_probability")(hidden)
    model = tf.keras.Model(inputs=inputs, outputs=output)
    # No XLA: compiling the update step costs more than it saves on a model this small.
    model.optimizer = tf.keras.optimizers.Adam(hparams.learning_rate, jit_compile=False)
    return model


def dataset(files: list[str], transform_output: tft.TFTransformOutput, batch_size: int) -> tf.data.Dataset:
    """Batches of (transformed features, label), parsed once and then served from memory."""
    spec = transform_output.transformed_feature_spec()

    def parse(serialized):
        features = tf.io.parse_example(serialized, spec)
        return features, features.pop(F.TRANSFORMED_LABEL_KEY)

    paths = [path for pattern in files for path in tf.io.gfile.glob(pattern)]
    return (tf.data.TFRecordDataset(paths, compression_type="GZIP")
            .batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
            .cache().repeat().prefetch(tf.data.AUTOTUNE))


def train(model: tf.keras.Model, train: tf.data.Dataset, evaluation: tf.data.Dataset,
          train_steps: int, eval_steps: int) -> dict[str, float]:
    """Plain training loop; returns the eval loss and AUC.

    Keras' fit() wraps its steps in autograph, which spends 10-15 s converting Keras' own
    source on first use in every process; these steps are traced without autograph and
    start in well under a second.
    """
    loss_fn = tf.keras.losses.BinaryCrossentropy()
    auc, mean_loss = tf.keras.metrics.AUC(), tf.keras.metrics.Mean()

    @tf.function(autograph=False)
    def train_step(features, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function(autograph=False)
    def eval_step(features, labels):
        predictions = model(features, training=False)
        mean_loss.update_state(loss_fn(labels, predictions))
        auc.update_state(labels, predictions)

    report_every = max(1, train_steps // 5)
    for step, (features, labels) in enumerate(train.take(train_steps), start=1):
        loss = train_step(features, labels)
        if step % report_every == 0 or step == train_steps:
            print(f"step {step}/{train_steps}: loss {float(loss):.4f}", flush=True)
    for features, labels in evaluation.take(eval_steps):
        eval_step(features, labels)
    result = {"eval_loss": float(mean_loss.result()), "eval_auc": float(auc.result())}
    print(f"after {train_steps} steps, {eval_steps} eval batches: " +
          ", ".join(f"{name} {value:.4f}" for name, value in result.items()), flush=True)
    return result


def resolve_hyperparameters(fn_args) -> Hyperparameters:
    """Tuned values (Tuner's output, or the newest in ML Metadata), then the config's on top."""
    values = dict((getattr(fn_args, "hyperparameters", None) or {}).get("values", {}))
    values.update((fn_args.custom_config or {}).get(HYPERPARAMETERS_KEY) or {})
    return Hyperparameters.from_dict(values)


def run_fn(fn_args) -> None:
    """Entry point for TFX Trainer: train, then export with the serving signatures."""
    hparams = resolve_hyperparameters(fn_args)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    model = build_model(hparams)
    train(model,
          dataset(fn_args.train_files, transform_output, hparams.batch_size),
          dataset(fn_args.eval_files, transform_output, hparams.batch_size),
          fn_args.train_steps, fn_args.eval_steps)
    signatures.export(model, transform_output, fn_args.serving_model_dir,
                      metadata={"hyperparameters.json": json.dumps(dataclasses.asdict(hparams))})
