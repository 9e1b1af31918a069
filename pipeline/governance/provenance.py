"""What a run needs to be reproduced, recorded in ML Metadata on the run's own context.

Each run gets, as custom properties of its run context (the one `taxi-pipeline runs`
lists it by): the git commit of the checkout and whether the tree was dirty, the sha256 of
requirements.lock, the Python and library versions, the seed, the models/ fingerprint, the
settings (as TOML), the spans with the sha256 of every file it read, and the hyperparameters
Trainer used. Environment and data are taken when the run starts (what it ran with), the
hyperparameters when it ends (tuned ones are known only then).

Local runs call before_run() and record_safely(). Airflow runs (any mode) record from the
training DAG's own callbacks (pipeline/runners/airflow_runner.py): record_at_start() when
CsvCheck has checked the files, complete_record() when Trainer is done and when the DAG run
ends; TFX's Airflow launcher names the run's context "<pipeline>.<DAG run id>".

Nothing here may stop a run: a missing git, a tree that is not a checkout or a missing lock
file reads "unknown".
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
from typing import TextIO

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import artifacts, metadata
from pipeline.config import REPO_ROOT, PipelineConfig, to_toml
from pipeline.prepare import file_sha256

UNKNOWN = "unknown"
LOCK_FILE = REPO_ROOT / "requirements.lock"
# The libraries whose version decides what a run computes.
LIBRARIES = ("tensorflow", "tfx", "tensorflow-transform", "tensorflow-model-analysis",
             "tensorflow-data-validation", "apache-beam", "ml-metadata")
# Marks a run context that carries a record (older runs have none).
RECORDED = "provenance_recorded"


@dataclasses.dataclass
class Provenance:
    git_commit: str = UNKNOWN
    git_dirty: str = UNKNOWN  # "yes", "no" or "unknown"
    lock_sha256: str = UNKNOWN
    python: str = UNKNOWN
    libraries: dict[str, str] = dataclasses.field(default_factory=dict)
    seed: str = UNKNOWN
    models_fingerprint: str = UNKNOWN
    config_toml: str = ""
    data_root: str = ""
    spans: list[int] = dataclasses.field(default_factory=list)
    data_files: dict[str, str] = dataclasses.field(default_factory=dict)  # {path: sha256}
    hyperparameters: dict = dataclasses.field(default_factory=dict)  # what Trainer trained with
    trained: bool = False  # Trainer ran (or was served from the cache) in this run
    # Said when data_files could not be told exactly (the span files changed while an Airflow run ran).
    data_note: str = ""


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):  # no git on the machine, or it hung
        return None
    return done.stdout if done.returncode == 0 else None  # not a checkout, or git refused it


def git_state() -> tuple[str, str]:
    """(commit, "yes"/"no" dirty); "unknown" for what cannot be told."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return UNKNOWN, UNKNOWN
    # Untracked files count: a new module that is not committed yet still ran.
    status = _git("status", "--porcelain")
    return commit.strip(), UNKNOWN if status is None else ("yes" if status.strip() else "no")


def library_versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def lock_sha256() -> str:
    return file_sha256(str(LOCK_FILE)) if LOCK_FILE.is_file() else UNKNOWN


def collect(config: PipelineConfig, inputs) -> Provenance:
    """The record of a run about to start on `inputs` (pipeline.prepare.PreparedInputs)."""
    from models import seeding

    commit, dirty = git_state()
    return Provenance(
        git_commit=commit, git_dirty=dirty, lock_sha256=lock_sha256(), python=platform.python_version(),
        libraries=library_versions(), seed=str(seeding.SEED), models_fingerprint=inputs.code_version,
        config_toml=to_toml(config), data_root=config.data_root, spans=list(inputs.spans_read),
        data_files=dict(inputs.data_files))


# ML Metadata custom properties hold strings and numbers; the structured fields go in as JSON.
_JSON_FIELDS = ("libraries", "spans", "data_files", "hyperparameters")


def _to_properties(record: Provenance) -> dict[str, str | int]:
    values: dict[str, str | int] = {RECORDED: 1}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if field.name in _JSON_FIELDS:
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, bool):
            value = int(value)
        values[field.name] = value
    return values


def _from_context(context: metadata_store_pb2.Context) -> Provenance | None:
    props = context.custom_properties
    if RECORDED not in props:
        return None
    values = {}
    for field in dataclasses.fields(Provenance):
        if field.name not in props:
            continue
        value = metadata.custom_value(context, field.name)
        if field.name in _JSON_FIELDS:
            value = json.loads(value)
        elif field.name == "trained":
            value = bool(value)
        values[field.name] = value
    return Provenance(**values)


def run_context(store: metadata_store.MetadataStore, run_id: str) -> metadata_store_pb2.Context | None:
    return next((context for context in (store.get_context_by_type_and_name(kind, run_id)
                                         for kind in metadata.RUN_CONTEXT_TYPES) if context is not None), None)


def load(store: metadata_store.MetadataStore, run_id: str) -> Provenance | None:
    """The record of a run; None for a run recorded before provenance was (or by another runner)."""
    context = run_context(store, run_id)
    return _from_context(context) if context is not None else None


def _trained_with(node: metadata.NodeRun | None) -> dict:
    """The hyperparameters a Trainer's model was exported with (models/model.py writes them)."""
    model = (node.outputs.get("model") or [None])[0] if node else None
    path = os.path.join(model.uri, "Format-Serving", "assets.extra", "hyperparameters.json") if model else ""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def record(config: PipelineConfig, run_id: str, started: Provenance) -> Provenance:
    """Write `started` (with what Trainer did) onto the run's context; returns what was written."""
    store = metadata.open_store(config.metadata_path, metadata.READ_WRITE)
    context = run_context(store, run_id)
    if context is None:
        raise ValueError(f"no pipeline run {run_id!r} in {config.metadata_path}")
    nodes = {node.node_id: node for node in metadata.node_runs(store, run_id)}
    trainer = nodes.get(artifacts.TRAINER)
    written = dataclasses.replace(started, hyperparameters=_trained_with(trainer),
                                  trained=trainer is not None and trainer.state in ("COMPLETE", "CACHED"))
    for name, value in _to_properties(written).items():
        if isinstance(value, int):
            context.custom_properties[name].int_value = value
        else:
            context.custom_properties[name].string_value = str(value)
    store.put_contexts([context])
    return written


def record_safely(config: PipelineConfig, run_id: str, started: Provenance, out: TextIO) -> None:
    """record(), saying so on `out` when it cannot: the run's outcome stands either way."""
    try:
        record(config, run_id, started)
    except Exception as error:  # a record lost is worth a warning, not a failed run
        _not_recorded(run_id, error, out)


NOT_RECORDED = "its provenance (commit, versions, data hashes) was not recorded in ML Metadata"


def _not_recorded(run_id: str, error: Exception, out: TextIO) -> None:
    print(f"Warning: run {run_id}: {NOT_RECORDED}: {error}", file=out, flush=True)


# The parameter that carries the data's fingerprint (prepare.files_fingerprint) into CsvCheck's
# and SpanStatisticsGen's executions (pipeline/pipeline.py).
DATA_FINGERPRINT = "data_fingerprint"


def data_fingerprint_ran_with(store: metadata_store.MetadataStore, run_id: str) -> str | None:
    """The data fingerprint the run's own executions were given; None when none of them recorded one."""
    context = run_context(store, run_id)
    if context is None:
        return None
    for execution in sorted(store.get_executions_by_context(context.id), key=lambda e: e.id):
        # TFX's Airflow launcher stores parameters as properties, the IR-based runners as custom properties.
        for values in (execution.properties, execution.custom_properties):
            if DATA_FINGERPRINT in values and values[DATA_FINGERPRINT].string_value:
                return values[DATA_FINGERPRINT].string_value
    return None


def record_at_start(config: PipelineConfig, inputs, run_id: str, out: TextIO) -> Provenance:
    """before_run() and record() at once, for a run whose start is seen by one of its tasks (Airflow's CsvCheck,
    from the parse of the DAG file that built it): `inputs` are that parse's, the data as the task read it."""
    return record(config, run_id, before_run(config, inputs, out))


def complete_record(config: PipelineConfig, inputs, run_id: str, out: TextIO) -> Provenance:
    """Add what Trainer trained with to the run's record (Airflow: when Trainer's task is done, and again when
    the DAG run ends, in a process that may have parsed the DAG file later than the run's tasks did).

    The record record_at_start() wrote is kept as it is. Without one (CsvCheck failed, or its record did), it is
    collected now from `inputs`, whose span hashes are checked against the data fingerprint the run's own
    CsvCheck was given: when the files changed in between, the hashes are not what the run read, so none are
    recorded and data_note says why.
    """
    store = metadata.open_store(config.metadata_path)
    started = load(store, run_id)
    if started is None:
        started = collect(config, inputs)
        ran_with = data_fingerprint_ran_with(store, run_id)
        if ran_with is not None and started.data_files and ran_with != inputs.data_version:
            started = dataclasses.replace(
                started, data_files={},
                data_note=f"span files changed while the run ran (data fingerprint {ran_with} when read, "
                          f"{inputs.data_version} at its end): their hashes are not known")
            print(f"Warning: run {run_id}: {started.data_note}", file=out, flush=True)
    return record(config, run_id, started)


def recorded_safely(write, config: PipelineConfig, inputs, run_id: str, out: TextIO) -> None:
    """write(config, inputs, run_id, out) (record_at_start or complete_record), saying so on `out` when it cannot:
    the run's outcome stands either way."""
    try:
        write(config, inputs, run_id, out)
    except Exception as error:  # a record lost is worth a warning, not a failed run
        _not_recorded(run_id, error, out)


def recorded_runs(store: metadata_store.MetadataStore, pipeline_name: str) -> list[tuple[str, Provenance]]:
    """(run id, record) of every recorded run of the pipeline, oldest first."""
    found = []
    for run_id in metadata.run_ids(store, pipeline_name):
        record_ = load(store, run_id)
        if record_ is not None:
            found.append((run_id, record_))
    return found


def changed_spans(store: metadata_store.MetadataStore, pipeline_name: str, now: Provenance) -> list[str]:
    """One line per file of `now` whose content differs from when the newest run that trained on it read it."""
    last_seen: dict[str, tuple[str, str]] = {}  # path: (run id, sha256), newest trained run last
    for run_id, earlier in recorded_runs(store, pipeline_name):
        if earlier.trained:
            last_seen.update({path: (run_id, digest) for path, digest in earlier.data_files.items()})
    lines = []
    for path, digest in sorted(now.data_files.items()):
        if path in last_seen and digest and last_seen[path][1] and last_seen[path][1] != digest:
            run_id, before = last_seen[path]
            lines.append(f"Data changed: {span_name(path)} file {path} is not what run {run_id} trained on "
                         f"(sha256 {before[:12]} then, {digest[:12]} now); this run trains on the new content.")
    return lines


def span_name(path: str) -> str:
    """'span-4' for <data_root>/span-4/data.csv."""
    return os.path.basename(os.path.dirname(path))


def before_run(config: PipelineConfig, inputs, out: TextIO) -> Provenance:
    """The record of the run about to start; prints a line for each span file changed since it was trained on."""
    started = collect(config, inputs)
    try:
        if metadata.store_exists(config.metadata_path):
            for line in changed_spans(metadata.open_store(config.metadata_path), config.pipeline_name, started):
                print(line, file=out, flush=True)
    except Exception as error:  # reading earlier records must not stop the run
        print(f"Warning: could not compare the data with earlier runs' records: {error}", file=out, flush=True)
    return started
