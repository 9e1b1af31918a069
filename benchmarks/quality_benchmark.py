"""Model-quality benchmark: the pipeline's model beside a gradient-boosted-trees baseline, same split.

Overall AUC on this data is mostly the cash slice (cash tips are not recorded, so a cash trip
is never a big tip); the question the model exists for is the card-paying rider. This script
takes one pipeline run (the newest in an output root, or one it starts with --run-pipeline)
and, on that run's own ExampleGen split (the tf.Examples of Split-train and Split-eval, so
the rows are the ones Evaluator scored):

1. trains scikit-learn's HistGradientBoostingClassifier on the train split: the raw columns
   (missing cells left missing; payment_type and company as categories) plus fare per mile,
   speed (miles per hour), day of week and year from trip_start_timestamp (UTC);
2. scores the eval rows with the run's model (the pushed version when the run pushed, else
   Trainer's output) through its raw-feature signature, empty cells filled with the
   feature's default as serving clients do, and checks the AUC agrees with what Evaluator
   recorded for the run (overall and on the card slice, within 1e-3: TFMA's AUC is a
   10,000-threshold approximation);
3. prints AUC, calibration (mean prediction / mean label) and examples overall, on the card
   slice (payment_type=Credit Card) and on the model's weakest gated slices (the Evaluator's
   slices with min_slice_examples of each class), for both models, then the targets of
   issue #20 as met / not met: card AUC >= 0.70 and >= the baseline's + 0.01, overall AUC
   not below the reference (the previous model's on the shipped data, --reference-auc),
   calibration within 0.05 of 1.0 overall and on the card slice.

    python benchmarks/quality_benchmark.py --run-pipeline --output-root out/quality   # ~3 min
    python benchmarks/quality_benchmark.py --output-root out          # the newest run there
    python benchmarks/quality_benchmark.py --output-root out --json benchmarks/results/quality.json

Exit status 0 whether or not the targets are met (it measures; the e2e tests gate), 2 when
the run cannot be read or the model's AUC disagrees with Evaluator's.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tf_environment  # noqa: E402,F401  (TensorFlow's settings before it is imported)

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from models import features as F  # noqa: E402
from pipeline import artifacts, metadata  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.evaluation import eval_config, slice_floor  # noqa: E402
from pipeline.evaluation.outcome import metrics_table  # noqa: E402

CARD_SLICE = "payment_type=Credit Card"
# Targets of issue #20.
MIN_CARD_AUC = 0.70
MIN_CARD_MARGIN_OVER_BASELINE = 0.01
MAX_CALIBRATION_ERROR = 0.05
# Overall AUC of the model before issue #20 (models/ at commit 910880a) on the shipped data's
# eval split, measured by this script: the new model may not be lower.
REFERENCE_OVERALL_AUC = 0.9407
# How far the AUC computed here may differ from Evaluator's for the same rows.
EVALUATOR_AGREEMENT = 1e-3
CATEGORICAL = ("payment_type", "company")
DERIVED = ("fare_per_mile", "speed_mph", "day_of_week", "year")
WEAKEST_SHOWN = 3


class BenchmarkError(Exception):
    """The run cannot be measured (no such run, no eval split, disagreement with Evaluator)."""


@dataclasses.dataclass
class RunArtifacts:
    run_id: str
    examples_uri: str
    evaluation_uri: str
    model_dir: str
    model_source: str  # "pushed version N" or "Trainer output (not pushed)"


def find_run(output_root: str, run_id: str | None) -> RunArtifacts:
    """The newest run of the output root's pipeline that has an evaluation (or `run_id`)."""
    config = load_config(overrides=[f"output_root={output_root}"])
    if not metadata.store_exists(config.metadata_path):
        raise BenchmarkError(f"{output_root}: no ML Metadata store; run `taxi-pipeline run --set "
                             f"output_root={output_root}` first, or pass --run-pipeline")
    store = metadata.open_store(config.metadata_path)
    candidates = [run_id] if run_id else list(reversed(metadata.run_ids(store, config.pipeline_name)))
    for candidate in candidates:
        nodes = {node.node_id: node for node in metadata.node_runs(store, candidate)}
        examples = nodes.get(artifacts.EXAMPLE_GEN)
        evaluator, trainer, pusher = (nodes.get(name) for name in
                                      (artifacts.EVALUATOR, artifacts.TRAINER, artifacts.PUSHER))
        if not (examples and examples.outputs.get("examples") and evaluator and evaluator.outputs.get("evaluation")
                and trainer and trainer.outputs.get("model")):
            continue
        pushed = pusher.outputs.get("pushed_model") if pusher else None
        if pushed and metadata.custom_value(pushed[0], "pushed"):
            model_dir = metadata.custom_value(pushed[0], "pushed_destination")
            source = f"pushed version {metadata.custom_value(pushed[0], 'pushed_version')}"
        else:
            model_dir = os.path.join(trainer.outputs["model"][0].uri, "Format-Serving")
            source = "Trainer output (not pushed)"
        return RunArtifacts(candidate, examples.outputs["examples"][0].uri,
                            evaluator.outputs["evaluation"][0].uri, model_dir, source)
    raise BenchmarkError(f"{output_root}: no run {'named ' + run_id if run_id else ''} with ExampleGen, "
                         "Trainer and Evaluator outputs in its metadata store")


def read_split(examples_uri: str, split: str) -> pd.DataFrame:
    """The raw tf.Examples of one ExampleGen split as a frame; empty cells are NaN / None."""
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise BenchmarkError(f"{examples_uri}: no Split-{split} files")
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        example = tf.train.Example.FromString(record)
        row = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = getattr(feature, kind).value if kind else []
            if len(values):
                row[name] = values[0].decode() if kind == "bytes_list" else values[0]
        rows.append(row)
    return pd.DataFrame(rows)


def big_tip(frame: pd.DataFrame) -> np.ndarray:
    """The label as preprocessing_fn computes it (float32, empty cells 0)."""
    tips = frame[F.LABEL_KEY].fillna(0).to_numpy(np.float32)
    fare = frame["fare"].fillna(0).to_numpy(np.float32)
    return (tips > fare * np.float32(F.BIG_TIP_SHARE)).astype(np.int64)


def baseline_columns(frame: pd.DataFrame, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Raw columns (missing stays NaN, which the trees route on their own) plus the derived ones."""
    numeric = [f.name for f in F.FEATURES if f.name not in CATEGORICAL] + ["trip_start_timestamp"]
    out = frame.reindex(columns=numeric).astype("float64")
    for name in CATEGORICAL:  # codes in the train split's category order; unseen values -> NaN
        out[name] = pd.Categorical(frame[name], categories=categories[name]).codes.astype("float64")
        out.loc[out[name] < 0, name] = np.nan
    miles, seconds = out["trip_miles"], out["trip_seconds"]
    out["fare_per_mile"] = (out["fare"] / miles).where(miles > 0)
    out["speed_mph"] = (miles / (seconds / 3600.0)).where(seconds > 0)
    start = pd.to_datetime(out["trip_start_timestamp"], unit="s", utc=True)
    out["day_of_week"] = start.dt.dayofweek.astype("float64")
    out["year"] = start.dt.year.astype("float64")
    return out


def train_baseline(train: pd.DataFrame, evaluation: pd.DataFrame, seed: int) -> np.ndarray:
    """Eval-row probabilities of a HistGradientBoostingClassifier trained on the train split."""
    # ExampleGen's files hold the split's rows in no fixed order, and early stopping holds out
    # a random share of them: sorted rows make the baseline the same for the same split.
    train = train.sort_values(sorted(train.columns), na_position="last", kind="stable").reset_index(drop=True)
    categories = {name: sorted(train[name].dropna().unique()) for name in CATEGORICAL}
    x_train, x_eval = baseline_columns(train, categories), baseline_columns(evaluation, categories)
    model = HistGradientBoostingClassifier(
        # Small trees, slow learning: the best of a few settings tried on the shipped data's card
        # slice (0.663 here against 0.648 with scikit-learn's defaults).
        learning_rate=0.03, max_iter=600, max_leaf_nodes=8, min_samples_leaf=40,
        categorical_features=[x_train.columns.get_loc(name) for name in CATEGORICAL],
        early_stopping=True, validation_fraction=0.1, n_iter_no_change=30, random_state=seed)
    model.fit(x_train, big_tip(train))
    return model.predict_proba(x_eval)[:, 1]


def score_model(model_dir: str, evaluation: pd.DataFrame, batch: int = 1024) -> np.ndarray:
    """Eval-row probabilities from the SavedModel's raw-feature signature."""
    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures[artifacts.SERVING_RAW]
    inputs = {}
    for feature in F.FEATURES:
        column = evaluation[feature.name] if feature.name in evaluation else pd.Series([None] * len(evaluation))
        column = column.where(column.notna(), feature.default)
        inputs[feature.name] = column.to_numpy().astype(object if feature.dtype == tf.string else
                                                       feature.dtype.as_numpy_dtype)
    if any(name not in inputs for name in signature.structured_input_signature[1]):
        missing = sorted(set(signature.structured_input_signature[1]) - set(inputs))
        raise BenchmarkError(f"{model_dir}: the raw signature wants {missing}, not in models/features.py")
    out = []
    for start in range(0, len(evaluation), batch):
        chunk = {name: tf.constant(values[start:start + batch]) for name, values in inputs.items()}
        out.append(next(iter(signature(**chunk).values())).numpy().reshape(-1))
    return np.concatenate(out)


def slice_rows(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """{slice name as Evaluator spells it: row mask} for the overall slice and the Evaluator's slices."""
    slices = {"overall": np.ones(len(frame), bool)}
    for spec in eval_config.SLICES:
        keys = frame.reindex(columns=list(spec))
        present = keys.notna().all(axis=1)
        for values, index in keys[present].groupby(list(spec)).groups.items():
            values = values if isinstance(values, tuple) else (values,)
            name = ", ".join(f"{column}={_slice_value(value)}" for column, value in zip(spec, values))
            mask = np.zeros(len(frame), bool)
            mask[frame.index.get_indexer(index)] = True
            slices[name] = mask
    return slices


def _slice_value(value) -> str:
    return str(int(value)) if isinstance(value, (int, np.integer, float, np.floating)) else str(value)


def metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    both = 0 < labels.sum() < len(labels)
    return {"auc": float(roc_auc_score(labels, predictions)) if both else float("nan"),
            "calibration": float(predictions.mean() / labels.mean()) if labels.sum() else float("nan"),
            "examples": int(len(labels)), "positives": int(labels.sum())}


def measure(run: RunArtifacts, seed: int, min_slice_examples: int) -> dict:
    train, evaluation = read_split(run.examples_uri, artifacts.TRAIN_SPLIT), read_split(run.examples_uri,
                                                                                          artifacts.EVAL_SPLIT)
    labels = big_tip(evaluation)
    predictions = {"pipeline model": score_model(run.model_dir, evaluation),
                   "GBM baseline": train_baseline(train, evaluation, seed)}
    slices = slice_rows(evaluation)
    gated = [name for name, mask in slices.items() if name != "overall"
             and slice_floor.is_gated(mask.sum(), labels[mask].mean(), min_slice_examples)]
    per_slice = {name: {model: metrics(labels[mask], p[mask]) for model, p in predictions.items()}
                 for name, mask in slices.items() if name in ("overall", CARD_SLICE) or name in gated}
    weakest = sorted((name for name in gated if name != CARD_SLICE),
                     key=lambda name: per_slice[name]["pipeline model"]["auc"])[:WEAKEST_SHOWN]
    table = metrics_table(run.evaluation_uri)
    agreement = {}
    for name in ("overall", CARD_SLICE):
        recorded = table.get(name, {}).get(("auc", False))
        here = per_slice.get(name, {}).get("pipeline model", {}).get("auc")
        interval = getattr(recorded, "interval", None)  # Evaluator's 95% interval, when it computed one
        agreement[name] = {"evaluator": None if recorded is None else float(recorded), "here": here,
                           "interval": list(interval) if interval else None}
        if recorded is None or here is None or not abs(recorded - here) <= EVALUATOR_AGREEMENT:
            raise BenchmarkError(f"AUC on {name}: {here} here, {recorded} in Evaluator's metrics "
                                 f"({run.evaluation_uri}); they must agree within {EVALUATOR_AGREEMENT}: "
                                 "is the model the one Evaluator scored?")
    return {"run_id": run.run_id, "model": run.model_source, "model_dir": run.model_dir,
            "train_rows": len(train), "eval_rows": len(evaluation), "slices": per_slice,
            "weakest_gated": weakest, "gated_count": len(gated), "evaluator_agreement": agreement,
            "baseline_features": [c for c in baseline_columns(train.head(1), {n: [] for n in CATEGORICAL})]}


def targets(result: dict, reference_auc: float) -> list[tuple[str, bool]]:
    overall, card = result["slices"]["overall"], result["slices"].get(CARD_SLICE)
    model_card = card["pipeline model"]["auc"] if card else float("nan")
    gbm_card = card["GBM baseline"]["auc"] if card else float("nan")
    calibration_card = card["pipeline model"]["calibration"] if card else float("nan")
    calibration = overall["pipeline model"]["calibration"]
    return [
        (f"card AUC {model_card:.4f} >= {MIN_CARD_AUC}", model_card >= MIN_CARD_AUC),
        (f"card AUC {model_card:.4f} >= GBM {gbm_card:.4f} + {MIN_CARD_MARGIN_OVER_BASELINE}",
         model_card >= gbm_card + MIN_CARD_MARGIN_OVER_BASELINE),
        # At the 4 digits the reference was written with: the previous model meets its own figure.
        (f"overall AUC {overall['pipeline model']['auc']:.4f} >= reference {reference_auc:.4f}",
         round(overall["pipeline model"]["auc"], 4) >= reference_auc),
        (f"calibration overall {calibration:.3f} within {MAX_CALIBRATION_ERROR} of 1.0",
         abs(calibration - 1.0) <= MAX_CALIBRATION_ERROR),
        (f"calibration on the card slice {calibration_card:.3f} within {MAX_CALIBRATION_ERROR} of 1.0",
         abs(calibration_card - 1.0) <= MAX_CALIBRATION_ERROR),
    ]


def report(result: dict, reference_auc: float) -> str:
    lines = [f"run {result['run_id']}: {result['model']}; {result['train_rows']} train / "
             f"{result['eval_rows']} eval rows (ExampleGen's split, the rows Evaluator scored)",
             "GBM baseline: HistGradientBoostingClassifier on " + ", ".join(result["baseline_features"]),
             f"{'slice':45s} {'examples':>8s} {'big tips':>8s} {'model AUC':>9s} {'GBM AUC':>8s} "
             f"{'model cal':>9s} {'GBM cal':>8s}"]
    shown = ["overall", CARD_SLICE] + result["weakest_gated"]
    for name in shown:
        row = result["slices"].get(name)
        if row is None:
            lines.append(f"{name:45s} (no rows)")
            continue
        model, gbm = row["pipeline model"], row["GBM baseline"]
        label = name if name in ("overall", CARD_SLICE) else f"{name} (weak)"
        lines.append(f"{label:45s} {model['examples']:8d} {model['positives']:8d} {model['auc']:9.4f} "
                     f"{gbm['auc']:8.4f} {model['calibration']:9.3f} {gbm['calibration']:8.3f}")
    lines.append(f"({result['gated_count']} gated slices: >= the run's min_slice_examples of each class; "
                 f"'weak': the {WEAKEST_SHOWN} others with the lowest model AUC)")
    agreement = result["evaluator_agreement"]
    shown_interval = {name: " [{:.4f}, {:.4f}]".format(*values["interval"]) if values["interval"] else ""
                      for name, values in agreement.items()}
    lines.append("Evaluator's AUC for the same rows: " + ", ".join(
        f"{name} {values['evaluator']:.4f}{shown_interval[name]} (here {values['here']:.4f})"
        for name, values in agreement.items()))
    lines.append("Targets (issue #20):")
    lines += [f"  {'met    ' if met else 'NOT MET'}  {text}" for text, met in targets(result, reference_auc)]
    return "\n".join(lines)


def run_pipeline(output_root: str, settings: list[str]) -> None:
    command = [str(REPO / ".venv" / "bin" / "taxi-pipeline") if (REPO / ".venv" / "bin" / "taxi-pipeline").exists()
               else "taxi-pipeline", "run", "--set", f"output_root={output_root}"]
    for setting in settings:
        command += ["--set", setting]
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", required=True, help="the pipeline's output_root holding the run")
    parser.add_argument("--run-pipeline", action="store_true", help="run `taxi-pipeline run` there first")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a pipeline setting for --run-pipeline (e.g. data_root=..., train_steps=200)")
    parser.add_argument("--run", help="a run id (default: the newest run with an evaluation)")
    parser.add_argument("--reference-auc", type=float, default=REFERENCE_OVERALL_AUC,
                        help="overall AUC the model must not fall below (default: the previous model's "
                             "on the shipped data)")
    parser.add_argument("--min-slice-examples", type=int, default=None,
                        help="examples of each class that make a slice gated (default: the pipeline's)")
    parser.add_argument("--seed", type=int, default=0, help="the baseline's random_state")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.run_pipeline:
        run_pipeline(args.output_root, args.set)
    min_examples = args.min_slice_examples or load_config(overrides=args.set).min_slice_examples
    try:
        result = measure(find_run(args.output_root, args.run), args.seed, min_examples)
    except BenchmarkError as error:
        print(f"quality_benchmark: {error}", file=sys.stderr)
        return 2
    result["targets"] = [{"target": text, "met": met} for text, met in targets(result, args.reference_auc)]
    print(report(result, args.reference_auc))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
