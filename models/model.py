"""The Keras model and TFX Trainer's run_fn.

A small network: each id input (categorical, bucketized, crossed) gets an embedding sized
by its number of ids, numeric inputs go in as they are, and dense layers feed one output
head per payment type. Cash tips are never recorded, so a shared head spends its capacity
on the easy cash-is-never-a-big-tip rule; a head of its own lets the card-paying trips
(the slice the model exists for) be ranked on what matters for them.
"""
from __future__ import annotations

import dataclasses
import json

import tensorflow as tf
import tensorflow_transform as tft

from models import features as F
from models import seeding, signatures

# The pipeline passes hyperparameters to run_fn under this key of Trainer's custom_config.
HYPERPARAMETERS_KEY = "hyperparameters"


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    learning_rate: float = 0.002
    hidden_units: tuple[int, ...] = (64, 32)
    # The largest embedding; smaller vocabularies get fewer dimensions (embedding_size).
    embedding_dim: int = 8
    batch_size: int = 128
    dropout: float = 0.1
    # One output head per payment type (True) or one shared head.
    payment_heads: bool = True

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


def embedding_size(ids: int, largest: int) -> int:
    """Dimensions for an input of `ids` ids: about 2 * ids^(1/4) (a common rule of thumb), at most `largest`."""
    return max(2, min(largest, round(2 * ids ** 0.25)))


def probability(logit: tf.Tensor) -> tf.Tensor:
    """The sigmoid of `logit`, each row's value independent of the batch it is computed in.

    TensorFlow's CPU sigmoid computes whole SIMD packets with one approximation and the rows
    left over at a batch's end with another, one ulp apart: Evaluator batches rows by time, so
    a run's predictions (and the sums in calibration) changed in their last bits from run to
    run. In float64, rounded to float32, both agree but for about 2e-9 of values.
    """
    return tf.cast(tf.math.sigmoid(tf.cast(logit, tf.float64)), tf.float32)


def build_model(hparams: Hyperparameters) -> tf.keras.Model:
    inputs, encoded = {}, []
    for feature in F.MODEL_INPUTS:
        name = feature.transformed_name
        if F.is_numeric(feature):
            inputs[name] = tf.keras.Input(shape=(), name=name, dtype=tf.float32)
            encoded.append(tf.keras.layers.Reshape((1,))(inputs[name]))
        else:
            inputs[name] = tf.keras.Input(shape=(), name=name, dtype=tf.int64)
            # Every id kind gives ids below size + OOV_BUCKETS (see features.py).
            ids = feature.size + F.OOV_BUCKETS
            embedding = tf.keras.layers.Embedding(ids, embedding_size(ids, hparams.embedding_dim))
            encoded.append(embedding(inputs[name]))
    hidden = tf.keras.layers.Concatenate()(encoded)
    for units in hparams.hidden_units:
        hidden = tf.keras.layers.Dense(units, activation="relu")(hidden)
        if hparams.dropout:
            hidden = tf.keras.layers.Dropout(hparams.dropout)(hidden)
    if hparams.payment_heads:
        head = F.FEATURES_BY_NAME[F.HEAD_FEATURE]
        logits = tf.keras.layers.Dense(head.size + F.OOV_BUCKETS)(hidden)
        choice = tf.keras.layers.CategoryEncoding(head.size + F.OOV_BUCKETS, output_mode="one_hot")(
            inputs[head.transformed_name])
        logit = tf.keras.layers.Dot(axes=1)([logits, choice])
    else:
        logit = tf.keras.layers.Dense(1)(hidden)
    output = tf.keras.layers.Activation(probability, name="tip_probability")(logit)
    model = tf.keras.Model(inputs=inputs, outputs=output)
    # No XLA: compiling the update step costs more than it saves on a model this small.
    model.optimizer = tf.keras.optimizers.Adam(hparams.learning_rate, jit_compile=False)
    return model


def dataset(files: list[str], transform_output: tft.TFTransformOutput, batch_size: int) -> tf.data.Dataset:
    """Batches of (transformed features, label), parsed once and then served from memory."""
    spec = transform_output.transformed_feature_spec()

    def parse(serialized):
        return tf.io.parse_example(serialized, spec)

    def split_label(features):
        features = dict(features)
        return features, features.pop(F.TRANSFORMED_LABEL_KEY)

    paths = [path for pattern in files for path in tf.io.gfile.glob(pattern)]
    rows = seeding.in_content_order(tf.data.TFRecordDataset(paths, compression_type="GZIP"), parse)
    return rows.batch(batch_size).map(split_label).cache().repeat().prefetch(tf.data.AUTOTUNE)


def train(model: tf.keras.Model, train: tf.data.Dataset, evaluation: tf.data.Dataset,
          train_steps: int, eval_steps: int, checks: int = 10, patience: int = 3) -> dict[str, float]:
    """Training loop with early stopping on the eval split; returns the kept weights' eval loss and AUC.

    The eval split is measured `checks` times; the weights with the lowest eval loss (log
    loss: it rewards right probabilities, which calibration needs, as well as ranking) are
    kept, and training stops after `patience` checks without improvement. The learning rate
    falls linearly to a tenth over the steps, so the last updates do not throw the
    probabilities around.

    Keras' fit() wraps its steps in autograph, which spends 10-15 s converting Keras' own
    source on first use in every process; these steps are traced without autograph and
    start in well under a second.
    """
    loss_fn = tf.keras.losses.BinaryCrossentropy()
    auc, mean_loss = tf.keras.metrics.AUC(), tf.keras.metrics.Mean()
    learning_rate = float(model.optimizer.learning_rate.numpy())

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

    def measure() -> dict[str, float]:
        auc.reset_state()
        mean_loss.reset_state()
        for features, labels in evaluation.take(eval_steps):
            eval_step(features, labels)
        return {"eval_loss": float(mean_loss.result()), "eval_auc": float(auc.result())}

    check_every = max(1, train_steps // max(1, checks))
    best, best_weights, best_step, worse = None, None, 0, 0
    for step, (features, labels) in enumerate(train.take(train_steps), start=1):
        if step % 50 == 1:
            model.optimizer.learning_rate.assign(learning_rate * (1.0 - 0.9 * (step - 1) / train_steps))
        loss = train_step(features, labels)
        if step % check_every and step != train_steps:
            continue
        result = measure()
        print(f"step {step}/{train_steps}: loss {float(loss):.4f}, eval_loss {result['eval_loss']:.4f}, "
              f"eval_auc {result['eval_auc']:.4f}", flush=True)
        if best is None or result["eval_loss"] < best["eval_loss"]:
            best, best_weights, best_step, worse = result, model.get_weights(), step, 0
            continue
        worse += 1
        if worse >= patience:
            print(f"stopping early: eval loss has not improved for {patience} checks", flush=True)
            break
    model.set_weights(best_weights)
    print(f"kept the weights of step {best_step}/{train_steps}, {eval_steps} eval batches: " +
          ", ".join(f"{name} {value:.4f}" for name, value in best.items()), flush=True)
    return best


def resolve_hyperparameters(fn_args) -> Hyperparameters:
    """Tuned values (Tuner's output, or the newest in ML Metadata), then the config's on top."""
    values = dict((getattr(fn_args, "hyperparameters", None) or {}).get("values", {}))
    values.update((fn_args.custom_config or {}).get(HYPERPARAMETERS_KEY) or {})
    return Hyperparameters.from_dict(values)


def run_fn(fn_args) -> None:
    """Entry point for TFX Trainer: train, then export with the serving signatures."""
    seeding.seed_everything()  # weights and any shuffling as in every other run on this input
    hparams = resolve_hyperparameters(fn_args)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    model = build_model(hparams)
    train(model,
          dataset(fn_args.train_files, transform_output, hparams.batch_size),
          dataset(fn_args.eval_files, transform_output, hparams.batch_size),
          fn_args.train_steps, fn_args.eval_steps)
    signatures.export(model, transform_output, fn_args.serving_model_dir,
                      metadata={"hyperparameters.json": json.dumps(dataclasses.asdict(hparams))})
