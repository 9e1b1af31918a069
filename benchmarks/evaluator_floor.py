"""Evaluator floor: the work of the pipeline's Evaluator done directly, in one process.

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

This is the work the pipeline's bulk Evaluator executor does (pipeline/evaluation/
bulk_evaluation.py, whose functions it calls), without the executor around it: ML Metadata,
the launcher, TFMA's writers and validator, the blessing. Evaluator / floor is what that
costs; with TFX's own executor (--stock-executor) it was about 40 at 10^5 rows.

It then reads what Evaluator wrote (`tfma.load_metrics` on the ModelEvaluation artifact)
and compares every point value on every slice: "metrics agree: yes (N slices)" when the
slices are the same and no value differs by more than 1e-6. Interval bounds and
auc_change_upper_bound (an interval bound) are reported but not held to 1e-6: TFMA assigns
examples to its jackknife buckets at random (the bulk executor by a hash of each example),
and the floor draws its own.

    python benchmarks/evaluator_floor.py --output-root out                # newest Evaluator run there
    python benchmarks/evaluator_floor.py --output-root out --json floor.json
    python benchmarks/evaluator_floor.py --output-root out --profile-evaluator evaluator.prof
"""
from __future__ import annotations

import argparse
import dataclasses
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
    execution_id: int = 0
    blessing_uri: str | None = None  # its ModelBlessing, when the EvalConfig has thresholds


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
                        num_thresholds=coarse_auc.THRESHOLDS, execution_id=execution.id,
                        blessing_uri=uris.get("blessing"))


def slicing_specs() -> list[tuple[str, ...]]:
    """The slices of the pipeline's EvalConfig: overall (no features) first."""
    from pipeline.evaluation import eval_config
    return [()] + [tuple(spec) for spec in eval_config.SLICES]


# ---------------------------------------------------------------------------------------
# The work: read, predict, slice, metrics (the pipeline's bulk Evaluator's own functions).

def predict(model_path: str, examples: np.ndarray, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) of one model: its serving_default and transform_features on large batches."""
    from tensorflow_model_analysis.proto import config_pb2

    from pipeline.evaluation import bulk_evaluation
    spec = config_pb2.ModelSpec(signature_name="serving_default", preprocessing_function_names=["transform_features"],
                                label_key=label_key)
    return bulk_evaluation.score(model_path, spec, examples, raw_labels=None)


def compute(run: EvaluatorRun, batch_size: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """The floor: (metrics, intervals, seconds per phase). metrics[slice key][(name, model, is_diff)] = value."""
    from models import features as F
    from pipeline.evaluation import bulk_evaluation, bulk_metrics
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def phase(name: str, started: tuple[float, float]) -> tuple[float, float]:
        now = (time.monotonic(), time.process_time())
        timings[name] = timings.get(name, 0.0) + now[0] - started[0]
        cpu[name] = cpu.get(name, 0.0) + now[1] - started[1]
        return now

    mark = (time.monotonic(), time.process_time())
    bulk_evaluation.BATCH_SIZE = batch_size
    examples = bulk_evaluation.read_examples([os.path.join(run.examples_uri, f"Split-{run.split}")])
    mark = phase("read", mark)
    scored = {name: predict(path, examples, F.TRANSFORMED_LABEL_KEY) for name, path in run.models.items()}
    mark = phase("load models and predict", mark)
    specs = slicing_specs()
    names = list(dict.fromkeys(name for spec in specs for name in spec))
    example_index, slice_index, keys = bulk_metrics.slice_membership(
        bulk_evaluation.feature_columns(examples, names), specs, len(examples))
    mark = phase("slice", mark)
    # One jackknife bucket per example, shared by both models as in TFMA (they are one extract).
    buckets = np.random.default_rng(seed).integers(JACKKNIFE_BUCKETS, size=len(examples))
    settings = bulk_metrics.Settings(num_thresholds=run.num_thresholds, floor=run.floor,
                                     min_examples=run.min_examples)
    per_model = {name: bulk_metrics.model_metrics(predictions, labels, buckets, example_index, slice_index,
                                                  len(keys), settings)
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
        lower, upper = bulk_metrics.interval(values)
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
                      stock: bool = False, top: int = 30, work: pathlib.Path | None = None) -> dict:
    """Run the pipeline's Evaluator executor (TFX's own with `stock`) again on the inputs and exec
    properties of the recorded execution, in this process, into `work` (default a temporary
    folder); with a `profile_path`, under cProfile, printing the top costs. Returns the timing and
    the evaluation and blessing folders it wrote."""
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
    work = work or pathlib.Path(tempfile.mkdtemp(prefix="evaluator-profile-"))
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
    return {"wall_s": seconds, "cpu_s": cpu, "profile": profile_path, "evaluation": evaluation.uri,
            "blessing": blessing.uri}


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
