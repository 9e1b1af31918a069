"""`taxi-pipeline compare RUN RUN`: two runs side by side, from what ML Metadata recorded.

A run is named by its id (as `taxi-pipeline runs` lists it) or by the version it pushed.
The table has the hyperparameters Trainer used, the data (spans and the sha256 of each
file), the code (commit, dirty tree, models/ fingerprint, seed), the environment (lock file,
Python, libraries), the settings that differ, and the evaluation's metrics; a line whose
values differ is marked.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib

from ml_metadata.metadata_store import metadata_store

from pipeline import artifacts, metadata
from pipeline.governance import lineage, provenance

MARK = "*"
# (slice, metric): what a reader of two runs asks first; the card slice is the one the model is for.
METRICS = (("overall", "auc", "AUC"), ("payment_type=Credit Card", "auc", "AUC, card payers"),
           ("overall", "calibration", "calibration"), ("overall", "precision", "precision"),
           ("overall", "recall", "recall"), ("overall", "example_count", "evaluation examples"))
# Settings that name where a run wrote, not what it computed.
PLACE_SETTINGS = {"output_root", "metadata_store", "data_root"}


class CompareError(ValueError):
    """A run or version the store does not know, or one recorded without provenance."""


@dataclasses.dataclass
class RunView:
    run_id: str
    record: provenance.Provenance
    metrics: dict[str, float]  # label (METRICS' third column): value
    pushed_version: str = ""


def run_of_version(store: metadata_store.MetadataStore, version: str) -> str:
    """The id of the run that pushed `version`."""
    pushed = lineage.find_pushed(store, version)
    producers = sorted((e.execution_id for e in store.get_events_by_artifact_ids([pushed.id])
                        if e.type in lineage.OUTPUT_EVENTS))
    for execution_id in producers[:1]:
        for context in store.get_contexts_by_execution(execution_id):
            if context.type in metadata.RUN_CONTEXT_TYPES:
                return context.name
    raise CompareError(f"version {version} was not pushed by a pipeline run (a rollback copy?); "
                       "`taxi-pipeline lineage` shows the version it copies")


def resolve_run(store: metadata_store.MetadataStore, pipeline_name: str, name: str) -> str:
    """A run id as given, or the run that pushed the version `name`."""
    if name in metadata.run_ids(store, pipeline_name):
        return name
    if name in lineage.pushed_models(store):
        return run_of_version(store, name)
    raise CompareError(f"no run or pushed version {name!r}; `taxi-pipeline runs` lists the runs and the versions "
                       "they pushed")


def run_metrics(store: metadata_store.MetadataStore, run_id: str) -> dict[str, float]:
    """The candidate's metrics from the run's evaluation ({} when the run did not evaluate)."""
    from pipeline.evaluation import outcome  # TFMA: only when metrics are read

    evaluator = _nodes(store, run_id).get(artifacts.EVALUATOR)
    evaluations = evaluator.outputs.get("evaluation") if evaluator else None
    if not evaluations:
        return {}
    table = outcome.metrics_table(evaluations[0].uri)
    return {label: (int if key == "example_count" else float)(table[name][(key, False)])
            for name, key, label in METRICS if (key, False) in table.get(name, {})}


def view(store: metadata_store.MetadataStore, pipeline_name: str, name: str) -> RunView:
    run_id = resolve_run(store, pipeline_name, name)
    record = provenance.load(store, run_id)
    if record is None:
        raise CompareError(f"run {run_id} has no provenance record (it ran before runs were recorded, or its "
                           "record failed: a warning in its log says why); run the pipeline again to record one")
    return RunView(run_id, record, run_metrics(store, run_id), pushed_version(store, run_id))


def _nodes(store: metadata_store.MetadataStore, run_id: str) -> dict[str, metadata.NodeRun]:
    return {node.node_id: node for node in metadata.node_runs(store, run_id)}


def pushed_version(store: metadata_store.MetadataStore, run_id: str) -> str:
    """The version this run pushed; "" when it pushed nothing new."""
    pusher = _nodes(store, run_id).get(artifacts.PUSHER)
    if pusher is None or pusher.state != "COMPLETE":
        return ""
    pushed = (pusher.outputs.get("pushed_model") or [None])[0]
    if pushed is None or metadata.custom_value(pushed, "pushed") != 1:
        return ""
    return str(metadata.custom_value(pushed, "pushed_version"))


def _data_rows(record: provenance.Provenance) -> dict[str, str]:
    """{span file relative to data_root: its sha256, shortened}."""
    rows = {}
    for path, digest in record.data_files.items():
        rows[os.path.relpath(path, record.data_root) if record.data_root else path] = digest[:16] or "not hashed"
    return rows


def _settings(record: provenance.Provenance) -> dict[str, str]:
    try:
        values = tomllib.loads(record.config_toml)
    except tomllib.TOMLDecodeError:
        return {}
    return {name: str(value) for name, value in values.items()}


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.0f}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "-" if value is None or value == "" else str(value)


def rows(first: RunView, second: RunView) -> list[tuple[str, str, str, str]]:
    """(section or "", label, first value, second value); a section heading has empty values."""
    result: list[tuple[str, str, str, str]] = []

    def section(title: str, pairs: list[tuple[str, object, object]]) -> None:
        result.append((title, "", "", ""))
        result.extend(("", label, _text(a), _text(b)) for label, a, b in pairs)

    def keyed(a: dict, b: dict) -> list[tuple[str, object, object]]:
        return [(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b))]

    one, two = first.record, second.record
    section("run", [("run id", first.run_id, second.run_id), ("pushed version", first.pushed_version,
                                                                 second.pushed_version)])
    section("hyperparameters (as Trainer used them)", keyed(one.hyperparameters, two.hyperparameters))
    notes = [("data note", one.data_note, two.data_note)] if one.data_note or two.data_note else []
    section("data", [("data_root", one.data_root, two.data_root), ("spans", one.spans, two.spans)]
            + [(f"sha256 {name}", a, b) for name, a, b in keyed(_data_rows(one), _data_rows(two))] + notes)
    section("code", [("git commit", one.git_commit, two.git_commit), ("dirty tree", one.git_dirty, two.git_dirty),
                     ("models/ fingerprint", one.models_fingerprint, two.models_fingerprint),
                     ("seed", one.seed, two.seed)])
    section("environment", [("requirements.lock sha256", one.lock_sha256[:16], two.lock_sha256[:16]),
                            ("python", one.python, two.python)] + keyed(one.libraries, two.libraries))
    settings_one, settings_two = _settings(one), _settings(two)
    differing = [(name, a, b) for name, a, b in keyed(settings_one, settings_two)
                 if a != b and name not in PLACE_SETTINGS and name != "hyperparameters"]
    section("settings (those that differ; all are recorded)", differing)
    section("metrics (candidate on the eval split)", [(label, first.metrics.get(label), second.metrics.get(label))
                                                     for _, _, label in METRICS])
    return result


def format_comparison(first: RunView, second: RunView) -> str:
    table = rows(first, second)
    width = max([len(a) for _, _, a, _ in table] + [26])
    lines, differences = [], 0
    for heading, label, a, b in table:
        if heading:
            lines.append(heading)
            continue
        # The run's own name always differs; everything else that differs is marked.
        differs = a != b and label != "run id"
        differences += differs
        lines.append(f"{MARK if differs else ' '} {label:30s} {a:{width}s}  {b}")
    lines.append(f"{MARK} marks a difference: {differences} found." if differences
                 else "No differences beyond the run ids.")
    return "\n".join(lines)


def compare(store: metadata_store.MetadataStore, pipeline_name: str, first: str, second: str) -> str:
    return format_comparison(view(store, pipeline_name, first), view(store, pipeline_name, second))
