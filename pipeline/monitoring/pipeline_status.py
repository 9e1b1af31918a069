"""Pipeline run outcomes, the data gate and the newest push as Prometheus series (`pipeline.prom`).

ML Metadata is the source of truth: every write reads all runs back from it, so the other
outcomes keep their older times and a restored store gives the right file on the next
write. Written at the end of every run (local runner; the Airflow DAG's end callbacks), by a
local rerun that found nothing changed, and by every `taxi-pipeline monitor` pass. A
failure to write it never fails a run or a pass.

    taxi_pipeline_last_run_timestamp_seconds{pipeline,outcome}  end of the newest run with that outcome
    taxi_pipeline_runs_total{pipeline,outcome}                  runs with that outcome in the store
    taxi_pipeline_last_push_timestamp_seconds{pipeline}         the newest push of a new model
    taxi_data_gate_stopped{pipeline}                             1 when the newest run stopped at the data checks
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import pathlib
import socket

from ml_metadata.metadata_store import metadata_store
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from pipeline import artifacts, metadata
from pipeline.config import PipelineConfig, is_local

PROMETHEUS_FILE = "pipeline.prom"
PUSHED, NOT_BLESSED, GATE_STOPPED, FAILED = "pushed", "not_blessed", "gate_stopped", "failed"
OUTCOMES = (PUSHED, NOT_BLESSED, GATE_STOPPED, FAILED)
# The components that stop a run on its data: a broken CSV, or the gate's findings.
DATA_CHECKS = (artifacts.CSV_CHECK, artifacts.DATA_GATE)
_DONE = ("COMPLETE", "CACHED")
# The run lock's file (pipeline/runners/run_lock.py LOCK_FILE; not imported: that module imports TFX's Pusher code).
_LOCK_FILE = "run.lock"

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunOutcome:
    run_id: str
    ended: float  # Unix seconds: the last update of any of its executions
    outcome: str  # one of OUTCOMES


@dataclasses.dataclass
class PipelineStatus:
    pipeline: str
    runs: list[RunOutcome]  # oldest first; a run still in progress is left out
    last_push: float | None  # Unix seconds of the newest PushedModel that is not a rollback

    def last_run(self, outcome: str) -> float | None:
        return max((run.ended for run in self.runs if run.outcome == outcome), default=None)

    @property
    def gate_stopped(self) -> bool:
        return bool(self.runs) and self.runs[-1].outcome == GATE_STOPPED


def classify(nodes: list[metadata.NodeRun]) -> str:
    """One of OUTCOMES for a run that has ended, from its node states (as `taxi-pipeline runs` reads them).

    TFX's Airflow launcher leaves a failed component's execution RUNNING rather than FAILED: the
    first component that did not complete is where such a run stopped.
    """
    by_id = {node.node_id: node for node in nodes}
    pusher = by_id.get(artifacts.PUSHER)
    if pusher is not None and pusher.state in _DONE:
        pushed = (pusher.outputs.get("pushed_model") or [None])[0]
        # A cached Pusher: the same blessed model as an earlier run, serving already.
        return PUSHED if pushed is not None and metadata.custom_value(pushed, "pushed") == 1 else NOT_BLESSED
    failed = [node for node in nodes if node.state == "FAILED"] or [node for node in nodes if node.state not in _DONE]
    return GATE_STOPPED if failed and failed[0].node_id in DATA_CHECKS else FAILED


def run_in_progress(output_root: str) -> bool:
    """Whether a live process on this host holds the output folder's run lock (read, never taken).

    A run that ended cleanly empties the lock file; a crashed one leaves its holder, whose pid is gone.
    """
    if not is_local(output_root):
        return False
    try:
        holder = json.loads(pathlib.Path(output_root, _LOCK_FILE).read_text() or "null")
    except (OSError, ValueError):
        return False
    if not isinstance(holder, dict) or holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False  # the run calling this has ended: it is writing its own outcome
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


def read_status(store: metadata_store.MetadataStore, pipeline_name: str, newest_in_progress: bool) -> PipelineStatus:
    """Every run of the pipeline with its outcome, and the newest push of a new model."""
    outcomes = []
    run_ids = metadata.run_ids(store, pipeline_name)
    for position, run_id in enumerate(run_ids):
        nodes = metadata.node_runs(store, run_id)
        if not nodes:
            continue
        finished = any(node.state == "FAILED" or (node.node_id == artifacts.PUSHER and node.state in _DONE)
                       for node in nodes)
        if newest_in_progress and position == len(run_ids) - 1 and not finished:
            continue  # still running: where it stops is only known once it ends
        context = next(c for c in (store.get_context_by_type_and_name(kind, run_id)
                                   for kind in metadata.RUN_CONTEXT_TYPES) if c is not None)
        ended = max(e.last_update_time_since_epoch for e in store.get_executions_by_context(context.id)) / 1000
        outcomes.append(RunOutcome(run_id, ended, classify(nodes)))
    # A rollback serves an old model again: it does not make the model less stale.
    pushes = [a.create_time_since_epoch / 1000 for a in store.get_artifacts_by_type("PushedModel")
              if metadata.custom_value(a, "pushed") == 1 and not metadata.custom_value(a, "rolled_back_to")]
    return PipelineStatus(pipeline_name, outcomes, max(pushes, default=None))


def write_prometheus(path: pathlib.Path, status: PipelineStatus) -> None:
    """The gauges of `status`, renamed into place whole by write_to_textfile."""
    registry = CollectorRegistry()
    last_run = Gauge("taxi_pipeline_last_run_timestamp_seconds",
                     "When the newest pipeline run with this outcome ended (pushed, not_blessed, gate_stopped, "
                     "failed)", ("pipeline", "outcome"), registry=registry)
    total = Gauge("taxi_pipeline_runs_total", "Pipeline runs with this outcome recorded in ML Metadata",
                  ("pipeline", "outcome"), registry=registry)
    last_push = Gauge("taxi_pipeline_last_push_timestamp_seconds",
                      "When the newest model was pushed (rollbacks not counted)", ("pipeline",), registry=registry)
    gate = Gauge("taxi_data_gate_stopped", "1 when the newest finished run stopped at the data checks",
                 ("pipeline",), registry=registry)
    counts = collections.Counter(run.outcome for run in status.runs)
    for outcome in OUTCOMES:
        total.labels(status.pipeline, outcome).set(counts[outcome])
        when = status.last_run(outcome)
        if when is not None:  # no series rather than a 1970 timestamp: "never" is not "long ago"
            last_run.labels(status.pipeline, outcome).set(when)
    if status.last_push is not None:
        last_push.labels(status.pipeline).set(status.last_push)
    gate.labels(status.pipeline).set(1 if status.gate_stopped else 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)


def _count_confirmation(status: PipelineStatus, config: PipelineConfig) -> None:
    """A rerun that found nothing changed (runners/up_to_date.py) ends the newest run again, now."""
    from pipeline.runners import up_to_date

    found = up_to_date.confirmed(config) if is_local(config.output_root) else None
    if found and status.runs and status.runs[-1].run_id == found[0]:
        status.runs[-1].ended = max(status.runs[-1].ended, found[1])


def write_status(config: PipelineConfig, run_ended: bool = False) -> pathlib.Path | None:
    """Read the runs from ML Metadata and write `<output_root>/monitoring/pipeline.prom`.

    `run_ended`: the caller is the end of a run, so the newest run has ended whatever the run
    lock says (the Airflow DAG's callback runs while its parent still holds the lock). None
    when there is no store yet.
    """
    if not metadata.store_exists(config.metadata_path):
        return None
    status = read_status(metadata.open_store(config.metadata_path), config.pipeline_name,
                         newest_in_progress=not run_ended and run_in_progress(config.output_root))
    _count_confirmation(status, config)
    path = pathlib.Path(config.monitoring_dir, PROMETHEUS_FILE)
    write_prometheus(path, status)
    return path


def write_status_safely(config: PipelineConfig, run_ended: bool = False) -> str | None:
    """write_status, with a failure logged as a warning (and returned, for a runner to print): the run
    or pass it ends stands either way."""
    try:
        write_status(config, run_ended)
    except Exception as error:  # noqa: BLE001  (whatever broke, a run must not fail on its metrics file)
        warning = (f"pipeline status not written to {os.path.join(config.monitoring_dir, PROMETHEUS_FILE)} "
                   f"({type(error).__name__}: {error}); the next run or `taxi-pipeline monitor` writes it again")
        log.warning("%s", warning)
        return warning
    return None
