"""A rerun with nothing changed answers at once, without starting TensorFlow or TFX.

When the code, settings, libraries and data are those of the last run, and that run
finished, every component of a new run would come from TFX's cache and nothing would be
pushed; finding that out through TFX costs its imports and a cache lookup per component
(about 20-30 s here). `taxi-pipeline run` first compares what it can read without
TensorFlow and, when nothing differs, names the last run and stops.

What is compared (fingerprint()): every .py file under pipeline/ and models/, the curated
schema's content, requirements.lock, Python's and the pipeline libraries' versions, every
setting, and the sha256 of every span file the run would read and of the serving-data
files. The last run must also still be the pipeline's newest run in ML Metadata, with every
execution COMPLETE or CACHED and every artifact it recorded still on disk. Any doubt means
an ordinary run: remote data (not hashed), caching off, a run by another runner since, a
stopped or failed run, a missing artifact, no record.

No library does this: TFX's cache is the check it short-cuts, and it needs the compiled
pipeline, hence TFX, to answer.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import platform
import time

from pipeline import metadata
from pipeline.config import PipelineConfig, is_local, to_toml
from pipeline.prepare import PreparedInputs, models_fingerprint, prepare

STATE_FILE = "last_run.json"  # in output_root
PIPELINE_DIR = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class LastRun:
    run_id: str
    finished: str  # ISO time
    pushed: str | None  # the version folder it pushed, if it did


def fingerprint(config: PipelineConfig, inputs: PreparedInputs) -> str | None:
    """What a run's outcome depends on, hashed; None when the data is remote (not hashed here)."""
    from pipeline.governance import provenance

    if not is_local(config.data_root) or not inputs.data_files:
        return None
    parts = {
        "pipeline_code": models_fingerprint(PIPELINE_DIR),
        "models_code": inputs.code_version,
        "schema": inputs.schema_file,  # named by its content
        "lock": provenance.lock_sha256(),
        "python": platform.python_version(),
        "libraries": provenance.library_versions(),
        "settings": to_toml(config),
        "data": inputs.data_files,
        "serving_data": inputs.serving_data_version,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _state_path(config: PipelineConfig) -> pathlib.Path:
    return pathlib.Path(config.output_root) / STATE_FILE


def _write_state(config: PipelineConfig, state: dict) -> None:
    """The record, renamed into place whole: a reader never sees half of it."""
    path = _state_path(config)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1))
    os.replace(temporary, path)


def remember(config: PipelineConfig, inputs: PreparedInputs, last: LastRun) -> None:
    """After a run that finished: what it ran on, for the next run's check. Written whole or not at all."""
    made = fingerprint(config, inputs)
    if made is None or not is_local(config.output_root):
        return
    _write_state(config, {"fingerprint": made, **dataclasses.asdict(last)})


def forget(config: PipelineConfig) -> None:
    """A run that did not finish: the next one runs in full."""
    if is_local(config.output_root):
        _state_path(config).unlink(missing_ok=True)


def confirm(config: PipelineConfig, last: LastRun) -> None:
    """A rerun found nothing to do: the last run's outcome holds as of now. pipeline_status counts
    this as that run ending now, as the cached run TFX would have made did (so a schedule that
    finds nothing new does not look like a pipeline that stopped running)."""
    state = json.loads(_state_path(config).read_text())
    _write_state(config, {**state, "confirmed": time.time()})


def confirmed(config: PipelineConfig) -> tuple[str, float] | None:
    """(run id, Unix seconds) of the newest confirmation that nothing changed since that run."""
    try:
        state = json.loads(_state_path(config).read_text())
        return str(state["run_id"]), float(state["confirmed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unchanged_since(config: PipelineConfig) -> LastRun | None:
    """The last run when a new run would change nothing; None when it must run."""
    path = _state_path(config)
    if not config.enable_cache or not is_local(config.output_root) or not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        last = LastRun(state["run_id"], state["finished"], state.get("pushed"))
        recorded = state["fingerprint"]
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable record: run
    if fingerprint(config, prepare(config)) != recorded:
        return None
    if not metadata.store_exists(config.metadata_path):
        return None
    store = metadata.open_store(config.metadata_path)
    runs = metadata.run_ids(store, config.pipeline_name)
    if not runs or runs[-1] != last.run_id:
        return None  # another run (another runner, a stopped run) came after it
    for node in metadata.node_runs(store, last.run_id):
        if node.state not in ("COMPLETE", "CACHED"):
            return None
        if any(not os.path.exists(artifact.uri) for artifacts in node.outputs.values() for artifact in artifacts):
            return None  # TFX would not reuse an execution whose output is gone
    if last.pushed and not os.path.isdir(last.pushed):
        return None
    return last
