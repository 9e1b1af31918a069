"""Evaluator floor: the work of the pipeline's TFMA Evaluator done directly, in one process.

Given a finished pipeline run (its ML Metadata store), it finds the newest Evaluator
execution and what that execution read: the eval split of ExampleGen's examples, the
candidate's SavedModel and, when there was one, the baseline's. Then, timed after the
imports:

* load each model, read the eval split into memory;
* call each model's `serving_default` (the prediction) and `transform_features` (the label
  `big_tip`, as TFMA's preprocessing function gives it) on batches of --batch-size rows;
* compute with numpy every metric of the pipeline's EvalConfig on every slice it asks for
  (overall, trip_start_hour, payment_type, company, payment_type x trip_start_hour):
  example count, binary accuracy, precision and recall at 0.5, calibration, mean label,
  mean prediction, AUC as coarse_auc.CoarseAUC computes it (TFMA's 10,000-bucket
  calibration histogram rebinned to 1,000 thresholds, trapezoids under the ROC curve),
  the slice floor's shortfall, and with a baseline the candidate - baseline difference of
  each and the upper end of the AUC change's interval; 95% intervals by the same
  20-bucket jackknife TFMA runs.

It then reads what Evaluator wrote (`tfma.load_metrics` on the ModelEvaluation artifact)
and compares every point value on every slice: "metrics agree: yes (N slices)" when the
slices are the same and no value differs by more than 1e-6. Interval bounds and
auc_change_upper_bound (an interval bound) are reported but not held to 1e-6: TFMA assigns
examples to its jackknife buckets with an unseeded random generator, so two Evaluator
runs on the same rows disagree there too.

    python benchmarks/evaluator_floor.py --output-root out                # newest Evaluator run there
    python benchmarks/evaluator_floor.py --output-root out --json floor.json
    python benchmarks/evaluator_floor.py --output-root out --profile-evaluator evaluator.prof
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import tf_environment  # noqa: E402,F401  (before anything imports TensorFlow)

TOLERANCE = 1e-6
JACKKNIFE_BUCKETS = 20  # TFMA's _DEFAULT_NUM_JACKKNIFE_BUCKETS
HISTOGRAM_BUCKETS = 10_000  # TFMA's calibration histogram (DEFAULT_NUM_BUCKETS)
EPSILON = 1e-7  # TFMA's binary_confusion_matrices._EPSILON
DECISION_THRESHOLD = 0.5  # Precision, Recall, BinaryAccuracy without a threshold
# Metrics whose written value is an interval bound, not a point value (see the docstring).
INTERVAL_METRICS = ("auc_change_upper_bound",)


@dataclasses.dataclass
class EvaluatorRun:
    """What one Evaluator execution read and wrote."""
    evaluation_uri: str
    examples_uri: str
    split: str
    models: dict[str, str]  # model name in the EvalConfig ("" for one model) -> SavedModel path
    baseline: str | None  # the baseline's model name, if there was one
    floor: float  # the slice floor's (min_slice_auc, min_slice_examples), from the EvalConfig's class name
    min_examples: int
    num_thresholds: int


# ---------------------------------------------------------------------------------------
# Finding the run.

def find_evaluator_run(metadata_path: str, execution_id: int | None = None) -> EvaluatorRun:
    """The newest complete Evaluator execution in the store (or `execution_id`), from ML Metadata."""
    from ml_metadata.proto import metadata_store_pb2
    from tensorflow_model_analysis.writers import eval_config_writer

    from pipeline import artifacts, metadata
    from pipeline.evaluation import coarse_auc, slice_floor

    store = metadata.open_store(metadata_path)
    nodes = [c for c in store.get_contexts_by_type("node") if c.name.rsplit(".", 1)[-1] == artifacts.EVALUATOR]
    executions = [e for c in nodes for e in store.get_executions_by_context(c.id)
                  if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    if execution_id is not None:
        executions = [e for e in executions if e.id == execution_id]
    if not executions:
        raise SystemExit(f"no complete Evaluator execution in {metadata_path}")
    execution = max(executions, key=lambda e: e.id)
    uris: dict[str, str] = {}
    for event in store.get_events_by_execution_ids([execution.id]):
        key = event.path.steps[0].key if event.path.steps else ""
        uris[key] = store.get_artifacts_by_id([event.artifact_id])[0].uri
    # TFX's Evaluator reads the "eval" split unless example_splits names others.
    splits = json.loads(metadata.custom_value(execution, "example_splits") or "null") or [artifacts.EVAL_SPLIT]
    if len(splits) != 1:
        raise SystemExit(f"Evaluator read splits {splits}; the floor reads one")
    # The EvalConfig and model paths exactly as TFMA recorded them beside its metrics.
    config, _, _, model_locations = eval_config_writer.load_eval_run(uris["evaluation"])
    baseline = next((spec.name for spec in config.model_specs if spec.is_baseline), None)
    floor, min_examples = None, None
    for metric in (m for spec in config.metrics_specs for m in spec.metrics):
        if slice_floor.parameters(metric.class_name):
            floor, min_examples = slice_floor.parameters(metric.class_name)
    if floor is None:
        raise SystemExit("the EvalConfig has no named slice floor (SliceAUCShortfall_floor_..._min_...)")
    return EvaluatorRun(evaluation_uri=uris["evaluation"], examples_uri=uris["examples"], split=splits[0],
                        models=dict(model_locations), baseline=baseline, floor=floor, min_examples=min_examples,
                        num_thresholds=coarse_auc.THRESHOLDS)


def slicing_specs() -> list[tuple[str, ...]]:
    """The slices of the pipeline's EvalConfig: overall (no features) first."""
    from pipeline.evaluation import eval_config
    return [()] + [tuple(spec) for spec in eval_config.SLICES]


# ---------------------------------------------------------------------------------------
# The work: read, predict, slice, metrics.

def read_examples(examples_uri: str, split: str, batch_size: int) -> np.ndarray:
    """Every serialized tf.Example of the split, as one numpy array of bytes."""
    import tensorflow as tf
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    return np.concatenate([batch.numpy() for batch in dataset])


def load_model(model_path: str):
    import tensorflow as tf
    return tf.saved_model.load(model_path)


def predict(loaded, examples: np.ndarray, batch_size: int, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) of one model: its serving_default and transform_features on large batches."""
    import tensorflow as tf
    serve, transform = loaded.signatures["serving_default"], loaded.signatures["transform_features"]
    predictions, labels = [], []
    for start in range(0, len(examples), batch_size):
        batch = tf.constant(examples[start:start + batch_size])
        output = serve(examples=batch)
        (prediction,) = output.values()  # the model has one output, the tip probability
        predictions.append(prediction.numpy().reshape(-1))
        labels.append(transform(examples=batch)[label_key].numpy().reshape(-1))
    # TFMA reads float32 predictions as Python floats: the same float64 values.
    return np.concatenate(predictions).astype(np.float64), np.concatenate(labels).astype(np.float64)


def slice_values(examples: np.ndarray, names: list[str], batch_size: int) -> dict[str, np.ndarray]:
    """Raw values of the slicing features, an object array per feature with None where the example has none."""
    import tensorflow as tf

    from models import features as F
    spec = {name: tf.io.RaggedFeature(F.FEATURES_BY_NAME[name].dtype) for name in names}
    columns: dict[str, list] = {name: [] for name in names}
    for start in range(0, len(examples), batch_size):
        parsed = tf.io.parse_example(tf.constant(examples[start:start + batch_size]), spec)
        for name in names:
            lengths = parsed[name].row_lengths().numpy()
            if lengths.max(initial=0) > 1:
                raise SystemExit(f"{name} has several values in an example; the floor slices single values")
            values = parsed[name].flat_values.numpy()
            column = np.full(len(lengths), None, dtype=object)
            # TFMA's slice keys hold strings (decoded bytes) and ints.
            column[lengths == 1] = [v.decode() if isinstance(v, bytes) else int(v) for v in values]
            columns[name].append(column)
    return {name: np.concatenate(parts) for name, parts in columns.items()}


def slice_membership(values: dict[str, np.ndarray], specs: list[tuple[str, ...]], n: int
                     ) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """(example index, slice index) pairs for every example in every slice, and each slice's key.

    A slice key is a sorted tuple of (feature, value); () is the whole split. As in TFMA, an
    example is in no slice of a spec whose features it lacks.
    """
    example_index, slice_index, keys = [], [], []
    for spec in specs:
        present = np.ones(n, dtype=bool)
        for name in spec:
            present &= values[name] != None  # noqa: E711 (element-wise on an object array)
        rows = np.flatnonzero(present)
        if not spec:
            groups, labels = np.zeros(n, dtype=np.int64), [()]
        else:
            # One code per combination of values: factorise each feature, then their cross.
            code = np.zeros(len(rows), dtype=np.int64)
            uniques = []
            for name in spec:
                unique, inverse = _factorise(values[name][rows])
                uniques.append(unique)
                code = code * len(unique) + inverse
            combos, groups = np.unique(code, return_inverse=True)
            labels = []
            for combo in combos:
                parts, rest = [], int(combo)
                for name, unique in reversed(list(zip(spec, uniques))):
                    rest, index = divmod(rest, len(unique))
                    value = unique[index]
                    parts.append((name, value.item() if hasattr(value, "item") else value))
                labels.append(tuple(sorted(parts)))
        example_index.append(rows)
        slice_index.append(groups + len(keys))
        keys.extend(labels)
    return np.concatenate(example_index), np.concatenate(slice_index), keys


def _factorise(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, index of each row's value) of an object array of str or int."""
    typed = column.astype(str) if len(column) and isinstance(column[0], str) else column.astype(np.int64)
    return np.unique(typed, return_inverse=True)


def _rebin_index(num_thresholds: int) -> np.ndarray:
    """For each of TFMA's calibration-histogram buckets, its bucket in the histogram rebinned to the
    AUC's thresholds (calibration_histogram.rebin with the thresholds binary_confusion_matrices gives it)."""
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = [-EPSILON] + inner + [1.0 + EPSILON]
    rebin_thresholds = np.array([t + EPSILON if t != 0 else t for t in thresholds])
    bucket = np.arange(HISTOGRAM_BUCKETS + 2)
    lower_edge = (bucket - 1) / HISTOGRAM_BUCKETS * (1.0 - 0.0) + 0.0
    lower_edge[0], lower_edge[-1] = -np.inf, np.inf  # the under- and overflow buckets
    # rebin walks the buckets in order and moves on at each threshold the bucket's edge reaches.
    return np.searchsorted(rebin_thresholds[1:], lower_edge, side="right")


def _histogram_bucket(predictions: np.ndarray) -> np.ndarray:
    """_CalibrationHistogramCombiner._bucket_index: truncated, with under- and overflow buckets."""
    index = (predictions - 0.0) / 1.0 * HISTOGRAM_BUCKETS + 1
    return np.floor(np.clip(index, 0, HISTOGRAM_BUCKETS + 1)).astype(np.int64)


def _divide(numerator: np.ndarray, denominator: np.ndarray, positive_only: bool = True) -> np.ndarray:
    """numerator / denominator, NaN where TFMA gives NaN (denominator <= 0, or close to 0 for the means)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result = numerator / denominator
    bad = denominator <= 0 if positive_only else np.isclose(denominator, 0.0)
    return np.where(bad, np.nan, result)


def _auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """TFMA's AUC (ROC, interpolation) from rebinned histograms, over the last axis."""
    # Confusion matrices at each threshold: tp/fp count the buckets at or above it.
    tp = np.cumsum(positives[..., ::-1], axis=-1)[..., ::-1]
    fp = np.cumsum(negatives[..., ::-1], axis=-1)[..., ::-1]
    fn = positives.sum(axis=-1, keepdims=True) - tp
    tn = negatives.sum(axis=-1, keepdims=True) - fp
    # The last threshold (1 + epsilon) matches nothing: TFMA sets it so explicitly.
    fn[..., -1], tn[..., -1] = tp[..., 0], fp[..., 0]
    tp[..., -1], fp[..., -1] = 0.0, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / (tp + fn)
        fp_rate = fp / (fp + tn)
    heights = (recall[..., :-1] + recall[..., 1:]) / 2.0
    return np.nansum((fp_rate[..., :-1] - fp_rate[..., 1:]) * heights, axis=-1)


def model_metrics(predictions: np.ndarray, labels: np.ndarray, buckets: np.ndarray, example_index: np.ndarray,
                  slice_index: np.ndarray, num_slices: int, run: EvaluatorRun) -> dict[str, np.ndarray]:
    """Every metric of one model, shape (slices, 1 + jackknife buckets): column 0 on all the slice's
    examples, column 1 + j leaving out jackknife bucket j (TFMA's delete-d samples)."""
    J = JACKKNIFE_BUCKETS
    label, prediction = labels[example_index], predictions[example_index]
    cell = slice_index * J + buckets[example_index]
    size = num_slices * J

    def per_cell(weights: np.ndarray | None) -> np.ndarray:
        parts = np.bincount(cell, weights=weights, minlength=size).astype(np.float64).reshape(num_slices, J)
        # Column 0 the whole slice, then each sample without one bucket.
        total = parts.sum(axis=1, keepdims=True)
        return np.concatenate([total, total - parts], axis=1)

    positive = label == 1.0  # TFMA's confusion matrix at a threshold, fractional labels on
    above = prediction > DECISION_THRESHOLD
    count, label_sum, prediction_sum = per_cell(None), per_cell(label), per_cell(prediction)
    tp, fp = per_cell((positive & above).astype(np.float64)), per_cell((~positive & above).astype(np.float64))
    tn, fn = per_cell((~positive & ~above).astype(np.float64)), per_cell((positive & ~above).astype(np.float64))

    # AUC: histogram of labels and examples per slice, jackknife bucket and rebinned threshold.
    rebin = _rebin_index(run.num_thresholds)[_histogram_bucket(prediction)]
    R = run.num_thresholds
    hist_cell = cell * R + rebin
    pos = np.bincount(hist_cell, weights=label, minlength=size * R).reshape(num_slices, J, R)
    examples = np.bincount(hist_cell, minlength=size * R).astype(np.float64).reshape(num_slices, J, R)
    neg = examples - pos
    pos_total, neg_total = pos.sum(axis=1, keepdims=True), neg.sum(axis=1, keepdims=True)
    auc = _auc(np.concatenate([pos_total, pos_total - pos], axis=1),
               np.concatenate([neg_total, neg_total - neg], axis=1))

    mean_label = _divide(label_sum, count, positive_only=False)
    # The slice floor's shortfall (slice_floor.shortfall), on the same AUC.
    positives = count * mean_label
    gated = (np.round(positives) >= run.min_examples) & (np.round(count - positives) >= run.min_examples)
    return {
        "example_count": count,
        "binary_accuracy": _divide(tp + tn, tp + fp + tn + fn),
        "precision": _divide(tp, tp + fp),
        "recall": _divide(tp, tp + fn),
        "calibration": _divide(prediction_sum, label_sum, positive_only=False),
        "mean_label": mean_label,
        "mean_prediction": _divide(prediction_sum, count, positive_only=False),
        "auc": auc,
        "slice_auc_shortfall": np.where(gated, np.maximum(0.0, run.floor - auc), 0.0),
    }


def _interval(samples: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFMA's jackknife interval (jackknife._JackknifeSampleCombineFn, math_util): (lower, upper)."""
    from scipy import stats
    J = samples.shape[-1]
    pseudo = point[..., None] * J - samples * (J - 1)
    std_error = np.std(pseudo, axis=-1, ddof=1) / math.sqrt(J)
    mean = samples.mean(axis=-1)
    t = stats.t.ppf(0.975, J - 1)
    return mean - std_error * t, mean + std_error * t


def compute(run: EvaluatorRun, batch_size: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """The floor: (metrics, intervals, seconds per phase). metrics[slice key][(name, model, is_diff)] = value."""
    from models import features as F
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def phase(name: str, started: tuple[float, float]) -> tuple[float, float]:
        now = (time.monotonic(), time.process_time())
        timings[name] = timings.get(name, 0.0) + now[0] - started[0]
        cpu[name] = cpu.get(name, 0.0) + now[1] - started[1]
        return now

    mark = (time.monotonic(), time.process_time())
    examples = read_examples(run.examples_uri, run.split, batch_size)
    mark = phase("read", mark)
    loaded = {name: load_model(path) for name, path in run.models.items()}
    mark = phase("load models", mark)
    scored = {name: predict(model, examples, batch_size, F.TRANSFORMED_LABEL_KEY) for name, model in loaded.items()}
    mark = phase("predict", mark)
    specs = slicing_specs()
    names = list(dict.fromkeys(name for spec in specs for name in spec))
    example_index, slice_index, keys = slice_membership(slice_values(examples, names, batch_size), specs,
                                                        len(examples))
    mark = phase("slice", mark)
    # One jackknife bucket per example, shared by both models as in TFMA (they are one extract).
    buckets = np.random.default_rng(seed).integers(JACKKNIFE_BUCKETS, size=len(examples))
    per_model = {name: model_metrics(predictions, labels, buckets, example_index, slice_index, len(keys), run)
                 for name, (predictions, labels) in scored.items()}
    # Differences, candidate - baseline, per sample as TFMA computes them.
    columns: dict[tuple[str, str, bool], np.ndarray] = {}
    for model, metrics in per_model.items():
        for metric, values in metrics.items():
            columns[(metric, model, False)] = values
    if run.baseline is not None:
        candidate = next(name for name in run.models if name != run.baseline)
        for metric in per_model[candidate]:
            columns[(metric, candidate, True)] = per_model[candidate][metric] - per_model[run.baseline][metric]
    # A slice gets intervals when none of its delete-d samples is empty (TFMA: "only 19 samples were non-empty").
    first_count = per_model[next(iter(per_model))]["example_count"]
    has_interval = (first_count[:, 1:] > 0).all(axis=1)
    intervals = {}
    for key, values in columns.items():
        if key[0] == "example_count" and not key[2]:
            continue  # TFMA computes no interval for the count itself
        lower, upper = _interval(values[:, 1:], values[:, 0])
        intervals[key] = (np.where(has_interval, lower, np.nan), np.where(has_interval, upper, np.nan))
    if run.baseline is not None:
        auc_key = ("auc", candidate, True)
        upper = intervals[auc_key][1]
        finite = np.isfinite(upper)
        columns[("auc_change_upper_bound", candidate, True)] = np.where(finite, upper, columns[auc_key][:, 0])
    metrics = {key: {metric: float(values[index] if values.ndim == 1 else values[index, 0])
                     for metric, values in columns.items()} for index, key in enumerate(keys)}
    interval_out = {key: {metric: (float(bounds[0][index]), float(bounds[1][index]))
                          for metric, bounds in intervals.items() if has_interval[index]}
                    for index, key in enumerate(keys)}
    phase("metrics", mark)
    timings["total"], cpu["total"] = sum(timings.values()), sum(cpu.values())
    return metrics, interval_out, {"wall_s": timings, "cpu_s": cpu, "examples": int(len(examples)),
                                   "slices": len(keys), "models": sorted(run.models)}


# ---------------------------------------------------------------------------------------
# What Evaluator wrote, and the comparison.

def evaluator_metrics(evaluation_uri: str) -> tuple[dict, dict]:
    """(metrics, intervals) from the ModelEvaluation artifact, keyed like compute()'s."""
    import tensorflow_model_analysis as tfma
    metrics, intervals = {}, {}
    for record in tfma.load_metrics(evaluation_uri):
        key = tuple(sorted((part.column, _slice_value(part)) for part in record.slice_key.single_slice_keys))
        values, bounds = {}, {}
        for entry in record.metric_keys_and_values:
            if entry.key.name == "__ERROR__" or entry.value.WhichOneof("type") != "double_value":
                continue  # TFMA's note that a small slice got no interval
            name = (entry.key.name, entry.key.model_name, entry.key.is_diff)
            values[name] = entry.value.double_value.value
            if entry.HasField("confidence_interval"):
                interval = entry.confidence_interval
                bounds[name] = (interval.lower_bound.double_value.value, interval.upper_bound.double_value.value)
        metrics[key], intervals[key] = values, bounds
    return metrics, intervals


def _slice_value(part):
    kind = part.WhichOneof("kind")
    value = getattr(part, kind)
    return value.decode() if kind == "bytes_value" else value


def _difference(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf


def compare(floor: dict, floor_intervals: dict, written: dict, written_intervals: dict,
            min_examples: int = 0) -> dict:
    """Every point value on every slice within TOLERANCE; interval bounds reported apart, on the
    slices with `min_examples` of each class (elsewhere a jackknife interval means little)."""
    from pipeline.evaluation import slice_floor
    problems = []
    if set(floor) != set(written):
        problems.append(f"slices only in the floor: {sorted(set(floor) - set(written))[:5]}; "
                        f"only in Evaluator's: {sorted(set(written) - set(floor))[:5]}")
    largest, where, values = 0.0, None, 0
    interval_largest = 0.0
    for key in set(floor) & set(written):
        mine, theirs = floor[key], written[key]
        if set(mine) != set(theirs):
            problems.append(f"slice {key}: metrics differ: {sorted(set(mine) ^ set(theirs))}")
        count, mean_label = (next((v for (name, _, diff), v in mine.items() if name == wanted and not diff), 0.0)
                             for wanted in ("example_count", "mean_label"))
        gated = slice_floor.is_gated(count, mean_label, min_examples)
        for metric in set(mine) & set(theirs):
            difference = _difference(mine[metric], theirs[metric])
            if metric[0] in INTERVAL_METRICS:
                interval_largest = max(interval_largest, difference if gated else 0.0)
                continue
            values += 1
            if difference > largest:
                largest, where = difference, (key, metric, mine[metric], theirs[metric])
        if not gated:
            continue
        for metric in set(floor_intervals.get(key, {})) & set(written_intervals.get(key, {})):
            for mine_bound, theirs_bound in zip(floor_intervals[key][metric], written_intervals[key][metric]):
                interval_largest = max(interval_largest, _difference(mine_bound, theirs_bound))
    agree = not problems and largest <= TOLERANCE
    return {"agree": agree, "slices": len(written), "values": values, "largest_difference": largest,
            "largest_at": repr(where) if where else None, "problems": problems,
            "interval_largest_difference": interval_largest}


# ---------------------------------------------------------------------------------------
# Profiling the real Evaluator on the same inputs.

def profile_evaluator(metadata_path: str, profile_path: str | None, beam_profile: str, execution_id: int | None,
                      stock: bool = False, top: int = 30) -> dict:
    """Run the pipeline's Evaluator executor (TFX's own with `stock`) again on the inputs and exec
    properties of the recorded execution, in this process, into a temporary folder; with a
    `profile_path`, under cProfile, printing the top costs."""
    import cProfile
    import pstats
    import tempfile

    from ml_metadata.proto import metadata_store_pb2
    from tfx.components.evaluator import executor as stock_executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import artifact_utils, standard_artifacts

    from pipeline import artifacts, metadata
    from pipeline.evaluation import evaluator as pipeline_evaluator
    from pipeline.runners import beam_profiles

    store = metadata.open_store(metadata_path)
    nodes = [c for c in store.get_contexts_by_type("node") if c.name.rsplit(".", 1)[-1] == artifacts.EVALUATOR]
    executions = [e for c in nodes for e in store.get_executions_by_context(c.id)
                  if e.last_known_state == metadata_store_pb2.Execution.COMPLETE
                  and (execution_id is None or e.id == execution_id)]
    execution = max(executions, key=lambda e: e.id)
    kinds = {"examples": standard_artifacts.Examples, "model": standard_artifacts.Model,
             "baseline_model": standard_artifacts.Model}
    inputs: dict[str, list] = {}
    for event in store.get_events_by_execution_ids([execution.id]):
        key = event.path.steps[0].key if event.path.steps else ""
        if event.type != metadata_store_pb2.Event.INPUT or key not in kinds:
            continue
        recorded = store.get_artifacts_by_id([event.artifact_id])[0]
        made = kinds[key]()
        made.uri = recorded.uri
        if key == "examples":
            made.split_names = artifact_utils.encode_split_names(
                json.loads(recorded.properties["split_names"].string_value))
        inputs.setdefault(key, []).append(made)
    exec_properties = {name: metadata.custom_value(execution, name) for name in execution.custom_properties}
    work = pathlib.Path(tempfile.mkdtemp(prefix="evaluator-profile-"))
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(work / "evaluation"), str(work / "blessing")
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=beam_profiles.beam_pipeline_args(beam_profile), tmp_dir=str(work / "tmp"),
        unique_id="profile")
    executor = (stock_executor if stock else pipeline_evaluator).Executor(context)
    profiler = cProfile.Profile() if profile_path else None
    started, cpu_started = time.monotonic(), time.process_time()
    if profiler:
        profiler.enable()
    executor.Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, exec_properties)
    if profiler:
        profiler.disable()
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
    print(f"{'TFX' if stock else 'the pipeline'}'s Evaluator executor again on execution {execution.id}: "
          f"{seconds:.1f} s wall, {cpu:.1f} s CPU"
          + (f" (under cProfile); profile: {profile_path}" if profiler else ""))
    if profiler:
        profiler.dump_stats(profile_path)
        stats = pstats.Stats(profile_path)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
    return {"wall_s": seconds, "cpu_s": cpu, "profile": profile_path}


# ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-root", type=pathlib.Path, help="a pipeline run's output_root (its metadata.db)")
    parser.add_argument("--metadata", help="the ML Metadata SQLite file (default <output-root>/metadata.db)")
    parser.add_argument("--execution", type=int, help="the Evaluator execution id (default: the newest)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="rows per model call (default 10,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jackknife buckets")
    parser.add_argument("--json", type=pathlib.Path, help="write timings and the comparison here")
    parser.add_argument("--profile-evaluator", metavar="PROF",
                        help="instead: run the pipeline's Evaluator executor again on the same inputs under cProfile")
    parser.add_argument("--beam-profile", default="in_memory", help="Beam profile for --profile-evaluator")
    parser.add_argument("--rerun-evaluator", action="store_true",
                        help="as --profile-evaluator, timed without cProfile")
    parser.add_argument("--stock-executor", action="store_true",
                        help="with --profile-evaluator/--rerun-evaluator: TFX's own Evaluator executor, "
                             "not the pipeline's")
    args = parser.parse_args()
    if not (args.metadata or args.output_root):
        parser.error("give --output-root or --metadata")
    metadata_path = args.metadata or str(args.output_root / "metadata.db")

    # Every import the work needs happens here, before the clock starts.
    import scipy.stats  # noqa: F401
    import tensorflow  # noqa: F401
    import tensorflow_model_analysis  # noqa: F401

    if args.profile_evaluator or args.rerun_evaluator:
        profile_evaluator(metadata_path, args.profile_evaluator, args.beam_profile, args.execution,
                          args.stock_executor)
        return
    run = find_evaluator_run(metadata_path, args.execution)
    models = ", ".join(f"{name or 'candidate'}={path}" for name, path in run.models.items())
    print(f"Evaluator execution: models {models}; "
          f"examples {run.examples_uri} (Split-{run.split})", flush=True)
    floor, floor_intervals, timing = compute(run, args.batch_size, args.seed)
    wall, cpu = timing["wall_s"], timing["cpu_s"]
    print(f"floor: {timing['examples']:,} examples, {len(run.models)} model(s), {timing['slices']} slices: "
          f"{wall['total']:.2f} s wall, {cpu['total']:.2f} s CPU (" +
          ", ".join(f"{name} {wall[name]:.2f} s" for name in wall if name != "total") + ")", flush=True)
    written, written_intervals = evaluator_metrics(run.evaluation_uri)
    result = compare(floor, floor_intervals, written, written_intervals, run.min_examples)
    print(f"metrics agree: {'yes' if result['agree'] else 'no'} ({result['slices']} slices, {result['values']} "
          f"values); largest difference {result['largest_difference']:.3g}" +
          (f" at {result['largest_at']}" if result["largest_at"] else ""))
    for problem in result["problems"]:
        print(f"  {problem}")
    print(f"  interval bounds on slices with >= {run.min_examples} of each class, and auc_change_upper_bound "
          f"(jackknife on random buckets, not held to {TOLERANCE:g}): largest difference "
          f"{result['interval_largest_difference']:.3g}")
    if args.json:
        args.json.write_text(json.dumps({**timing, "comparison": result, "batch_size": args.batch_size,
                                         "evaluation": run.evaluation_uri}, indent=1))
    if not result["agree"]:
        sys.exit(2)


if __name__ == "__main__":
    main()
