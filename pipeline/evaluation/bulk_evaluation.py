"""The Evaluator's work in bulk: every example scored in large batches, every metric in numpy.

TFMA evaluates one (slice, example) pair at a time through Beam; at 10^5 evaluation rows
that cost about 40 times the same work done on whole columns, and grew faster than the
rows (issue #19). This module does, for an EvalConfig it supports (supported() says which
and why not):

* read the split's serialized tf.Examples into memory;
* call each model's signature (serving_default) and its preprocessing function
  (transform_features, which gives the label) on batches of BATCH_SIZE rows;
* decode the slicing features with tfx_bsl's Arrow decoder (TFMA's own), and compute every
  metric on every slice and jackknife sample with bulk_metrics;
* hand TFMA's writers and validator the same dictionaries TFMA's evaluator hands them, so
  the ModelEvaluation artifact (metrics, plots, attributions, validations, eval_config.json)
  and the blessing are TFMA's formats and TFMA's decisions.

Jackknife buckets: each example's bucket is a hash of its bytes, not TFMA's random draw, so a
rerun on the same rows writes the same interval bounds (TFMA's differ a little every run).
"""
from __future__ import annotations

import glob
import hashlib
import logging
import os
from typing import Any

import numpy as np

from pipeline.evaluation import bulk_metrics, coarse_auc, slice_floor

BATCH_SIZE = 10_000  # rows per model call: large enough that per-call overhead vanishes
# TFMA metric class names this module computes (with the named slice floors), by the name they write.
CLASS_NAMES = {"ExampleCount": "example_count", "BinaryAccuracy": "binary_accuracy", "Precision": "precision",
               "Recall": "recall", "Calibration": "calibration", "MeanLabel": "mean_label",
               "MeanPrediction": "mean_prediction", "CoarseAUC": "auc", "AUCChangeUpperBound": "auc_change_upper_bound"}

log = logging.getLogger(__name__)


def unsupported(eval_config: Any) -> str | None:
    """Why this EvalConfig needs TFMA's own evaluation, or None when this module computes it exactly."""
    from tensorflow_model_analysis.proto import config_pb2
    if eval_config.cross_slicing_specs:
        return "cross-slicing specs"
    for spec in eval_config.slicing_specs:
        if spec.feature_values or spec.slice_keys_sql:
            return "a slicing spec with feature values or SQL"
    for spec in eval_config.model_specs:
        if (not spec.signature_name or not spec.label_key or len(spec.preprocessing_function_names) != 1
                or spec.example_weight_key or spec.example_weight_keys or spec.label_keys
                or spec.prediction_keys or spec.model_type not in ("", "tf_generic", "tf_keras")):
            return f"model spec {spec.name!r} is not one signature + one preprocessing function + one label"
    options = eval_config.options
    if options.HasField("min_slice_size") or options.HasField("disabled_outputs") or options.HasField(
            "include_default_metrics") and options.include_default_metrics.value:
        return "options min_slice_size, disabled_outputs or include_default_metrics"
    if options.compute_confidence_intervals.value and options.confidence_intervals.method not in (
            config_pb2.ConfidenceIntervalOptions.JACKKNIFE,):
        return "confidence intervals by a method other than the jackknife"
    for spec in eval_config.metrics_specs:
        if (spec.output_names or spec.HasField("binarize") or spec.HasField("aggregate")
                or spec.example_weights.weighted
                or spec.thresholds or spec.per_slice_thresholds or spec.cross_slice_thresholds):
            return "a metrics spec with outputs, binarization, aggregation, weights or spec-level thresholds"
        for metric in spec.metrics:
            if metric.config or metric.cross_slice_thresholds:
                return f"metric {metric.class_name} has a config or cross-slice thresholds"
            if metric.class_name not in CLASS_NAMES and not slice_floor.parameters(metric.class_name):
                return f"metric {metric.class_name} is not one of {sorted(CLASS_NAMES)} or a named slice floor"
    return None


def settings(eval_config: Any) -> bulk_metrics.Settings:
    floor, min_examples = 0.0, 0
    for metric in (m for spec in eval_config.metrics_specs for m in spec.metrics):
        if slice_floor.parameters(metric.class_name):
            floor, min_examples = slice_floor.parameters(metric.class_name)
    return bulk_metrics.Settings(num_thresholds=coarse_auc.THRESHOLDS, floor=floor, min_examples=min_examples)


# ---------------------------------------------------------------------------------------
# Reading, scoring, slicing.

def read_examples(split_uris: list[str]) -> np.ndarray:
    """Every serialized tf.Example of the split's files (TFX writes them gzipped), in file order."""
    import tensorflow as tf
    files = sorted(f for uri in split_uris for f in glob.glob(os.path.join(uri, "*")))
    if not files:
        raise FileNotFoundError(f"no example files in {split_uris}")
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression).batch(BATCH_SIZE)
    batches = [batch.numpy() for batch in dataset]
    return np.concatenate(batches) if batches else np.array([], dtype=object)


def score(model_path: str, model_spec: Any, examples: np.ndarray, raw_labels: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) of one model on every example, as float64 (TFMA reads floats as Python floats).

    The prediction is the signature's one output (or its prediction_key); the label is the
    preprocessing function's output named label_key, or the raw feature of that name.
    """
    import tensorflow as tf
    loaded = tf.saved_model.load(model_path)
    serve = loaded.signatures[model_spec.signature_name]
    preprocess = loaded.signatures[model_spec.preprocessing_function_names[0]]
    (serve_input,) = serve.structured_input_signature[1]
    (preprocess_input,) = preprocess.structured_input_signature[1]
    predictions, labels = [], []
    for start in range(0, len(examples), BATCH_SIZE):
        batch = tf.constant(examples[start:start + BATCH_SIZE])
        outputs = serve(**{serve_input: batch})
        if model_spec.prediction_key:
            prediction = outputs[model_spec.prediction_key]
        elif len(outputs) == 1:
            (prediction,) = outputs.values()
        else:
            raise ValueError(f"model {model_path}: signature {model_spec.signature_name} has outputs "
                             f"{sorted(outputs)}; set prediction_key in the EvalConfig's model spec")
        predictions.append(prediction.numpy().reshape(-1))
        transformed = preprocess(**{preprocess_input: batch})
        if model_spec.label_key in transformed:
            labels.append(transformed[model_spec.label_key].numpy().reshape(-1))
    predictions = np.concatenate(predictions).astype(np.float64) if predictions else np.zeros(0)
    if labels:
        return predictions, np.concatenate(labels).astype(np.float64)
    if raw_labels is None:
        raise ValueError(f"label {model_spec.label_key!r} is neither an output of "
                         f"{model_spec.preprocessing_function_names[0]} nor a feature of the examples")
    return predictions, raw_labels


def feature_columns(examples: np.ndarray, names: list[str]) -> dict[str, np.ndarray | None]:
    """Single values of features as object arrays (None where an example has none; str for bytes,
    as TFMA's slice keys hold them); None for a feature no example has."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from tfx_bsl.coders import example_coder
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    columns: dict[str, list] = {name: [] for name in names}
    for start in range(0, len(examples), BATCH_SIZE):
        batch = decoder.DecodeBatch(list(examples[start:start + BATCH_SIZE]))
        for name in names:
            index = batch.schema.get_field_index(name)
            column = np.full(batch.num_rows, None, dtype=object)
            if index >= 0:
                values = batch.column(index)
                lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False)
                if lengths.max(initial=0) > 1:
                    raise ValueError(f"feature {name} has several values in an example: "
                                     "TFMA's slicing would put it in several slices")
                flat = values.flatten()
                if pa.types.is_binary(flat.type) or pa.types.is_large_binary(flat.type):
                    flat = [value.decode() for value in flat.to_pylist()]
                else:
                    flat = flat.to_pylist()
                column[lengths == 1] = flat
            columns[name].append(column)
    return {name: np.concatenate(parts) if parts else np.full(0, None, dtype=object)
            for name, parts in columns.items()}


def jackknife_buckets(examples: np.ndarray) -> np.ndarray:
    """Each example's jackknife bucket, from a hash of its bytes: the same rows give the same buckets."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(example, digest_size=8).digest(), "little")
                        % bulk_metrics.JACKKNIFE_BUCKETS for example in examples),
                       dtype=np.int64, count=len(examples))


# ---------------------------------------------------------------------------------------
# The evaluation, as TFMA's evaluator would hand it to its writers.

def evaluate(eval_config: Any, split_uris: list[str], model_paths: dict[str, str]) -> list[tuple[tuple, dict]]:
    """[(slice key, {MetricKey: value})] for every slice of the EvalConfig, values as TFMA's evaluator
    makes them: types.ValueWithTDistribution where it computes an interval, floats elsewhere, and
    TFMA's __ERROR__ note on slices whose jackknife samples are not all non-empty."""
    import time

    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.api import types
    from tensorflow_model_analysis.metrics import metric_specs, metric_types
    from tensorflow_model_analysis.utils import model_util

    from pipeline.evaluation import auc_change_bound

    started = time.monotonic()
    examples = read_examples(split_uris)
    specs = [tuple(spec.feature_keys) for spec in eval_config.slicing_specs]
    names = list(dict.fromkeys(name for spec in specs for name in spec))
    label_keys = {spec.label_key for spec in eval_config.model_specs}
    columns = feature_columns(examples, names + sorted(label_keys - set(names)))
    example_index, slice_index, keys = bulk_metrics.slice_membership(
        {name: columns[name] for name in names}, specs, len(examples))
    log.info("bulk evaluation: %d examples, %d slices, read and sliced in %.1f s",
             len(examples), len(keys), time.monotonic() - started)
    buckets = jackknife_buckets(examples)
    config = settings(eval_config)
    per_model: dict[str, dict[str, np.ndarray]] = {}
    for spec in eval_config.model_specs:
        raw = columns.get(spec.label_key)
        raw_labels = None if raw is None or (raw == None).any() else raw.astype(np.float64)  # noqa: E711
        predictions, labels = score(model_paths[spec.name], spec, examples, raw_labels)
        per_model[spec.name] = bulk_metrics.model_metrics(predictions, labels, buckets, example_index,
                                                          slice_index, len(keys), config)
    log.info("bulk evaluation: %d model(s) scored, metrics computed in %.1f s",
             len(per_model), time.monotonic() - started)

    wanted = {metric.class_name for spec in eval_config.metrics_specs for metric in spec.metrics}
    written = {CLASS_NAMES.get(name) or slice_floor.NAME for name in wanted}
    baseline = model_util.get_baseline_model_spec(eval_config)
    candidates = [spec.name for spec in eval_config.model_specs if not spec.is_baseline]
    columns_out: dict[Any, np.ndarray] = {}
    for model, metrics in per_model.items():
        for name, values in metrics.items():
            if name in written:
                columns_out[metric_types.MetricKey(name=name, model_name=model, example_weighted=False)] = values
    if baseline is not None:  # TFMA's diff metrics: candidate - baseline, in every sample
        for key in [k for k in columns_out if k.model_name != baseline.name]:
            columns_out[key.make_diff_key()] = columns_out[key] - columns_out[key.make_baseline_key(baseline.name)]

    with_intervals = bool(eval_config.options.compute_confidence_intervals.value)
    skip = metric_specs.metric_keys_to_skip_for_confidence_intervals(eval_config.metrics_specs, eval_config)
    complete = bulk_metrics.complete_samples(next(iter(per_model.values()))["example_count"])
    stats = {key: bulk_metrics.jackknife(values) for key, values in columns_out.items()
             if with_intervals and key not in skip}
    error_key = metric_types.MetricKey(constants.ERROR_METRIC_NAME)
    result = []
    for index, slice_key in enumerate(keys):
        metrics: dict[Any, Any] = {}
        for key, values in columns_out.items():
            point = float(values[index, 0])
            if key in stats and complete[index]:
                mean, std_error = stats[key]
                metrics[key] = types.ValueWithTDistribution(
                    sample_mean=float(mean[index]), sample_standard_deviation=float(std_error[index]),
                    sample_degrees_of_freedom=bulk_metrics.JACKKNIFE_BUCKETS - 1, unsampled_value=point)
            else:
                metrics[key] = point
        if with_intervals and not complete[index]:
            samples = int((per_model[next(iter(per_model))]["example_count"][index, 1:] > 0).sum())
            metrics[error_key] = (f"CI not computed because only {samples} samples were non-empty. "
                                  f"Expected {bulk_metrics.JACKKNIFE_BUCKETS}.")
        if baseline is not None and "auc_change_upper_bound" in written:
            for model in candidates:  # TFMA's CIDerivedMetricComputation, on the interval just made
                auc = metric_types.MetricKey(name="auc", model_name=model, example_weighted=False).make_diff_key()
                if auc in metrics:
                    bound = metric_types.MetricKey(name=auc_change_bound.NAME, model_name=model,
                                                   example_weighted=False).make_diff_key()
                    metrics[bound] = auc_change_bound.upper_bound(metrics[auc])
        result.append((slice_key, metrics))
    return result


def write(output_uri: str, eval_config: Any, model_locations: dict[str, str], data_location: str,
          sliced_metrics: list[tuple[tuple, dict]]) -> None:
    """The ModelEvaluation artifact's files, by TFMA's own writers, with TFMA's validation of every slice."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.writers import eval_config_writer, metrics_plots_and_validations_writer

    paths = {kind: os.path.join(output_uri, kind) for kind in (
        constants.METRICS_KEY, constants.PLOTS_KEY, constants.ATTRIBUTIONS_KEY, constants.VALIDATIONS_KEY)}
    writers = [
        eval_config_writer.EvalConfigWriter(output_uri, eval_config=eval_config, data_location=data_location,
                                            data_file_format="tfrecords_gzip", model_locations=model_locations),
        # rubber_stamp False as TFX's Evaluator passes it (its models never set it).
        metrics_plots_and_validations_writer.MetricsPlotsAndValidationsWriter(
            output_paths=paths, eval_config=eval_config, add_metrics_callbacks=[], output_file_format="tfrecord",
            rubber_stamp=False)]
    # A hundred-odd records: written in this process (in-memory runner), whatever runner the pipeline uses.
    options = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"])
    with beam.Pipeline(options=options) as pipeline:
        # Typed Any: TFMA's evaluator hands its writer the __ERROR__ note (a str) without a type hint either.
        metrics = pipeline | "Metrics" >> beam.Create(sliced_metrics, reshuffle=False).with_output_types(Any)
        evaluation = {
            constants.METRICS_KEY: metrics,
            # TFMA writes an empty record per slice when nothing makes plots or attributions.
            constants.PLOTS_KEY: pipeline | "Plots" >> beam.Create([(key, {}) for key, _ in sliced_metrics],
                                                                   reshuffle=False),
            constants.ATTRIBUTIONS_KEY: pipeline | "Attributions" >> beam.Create(
                [(key, {}) for key, _ in sliced_metrics], reshuffle=False),
            constants.VALIDATIONS_KEY: metrics | "Validate" >> beam.Map(metrics_validator.validate_metrics,
                                                                        eval_config),
        }
        for writer in writers:
            _ = evaluation | writer.stage_name >> writer.ptransform
