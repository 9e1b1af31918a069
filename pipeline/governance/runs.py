"""`taxi-pipeline runs`: every pipeline run, rollback, monitoring pass and release step with its outcome, from MLMD."""
from __future__ import annotations

import dataclasses
import time

from ml_metadata.metadata_store import metadata_store

from pipeline import artifacts, metadata
from pipeline.monitoring import monitor_record
from pipeline.release import release_record

ROLLBACK_TYPE = "Rollback"


@dataclasses.dataclass
class RunSummary:
    run_id: str
    started: float  # Unix seconds
    seconds: float
    outcome: str


def _outcome(nodes: list[metadata.NodeRun]) -> str:
    by_id = {node.node_id: node for node in nodes}
    failed = [node.node_id for node in nodes if node.state == "FAILED"]
    if failed:
        # A failing Pusher takes back what it copied (pipeline/evaluation/atomic_pusher.py).
        return f"FAILED at {failed[0]}" + (", nothing pushed" if failed[0] == artifacts.PUSHER else "")
    pusher = by_id.get(artifacts.PUSHER)
    if pusher is None:
        return "incomplete (stopped before Pusher)"
    if pusher.state not in ("COMPLETE", "CACHED"):
        # Killed mid-push (or still pushing): ML Metadata has no push, and the next run takes
        # out a version that reached the serving folder unrecorded (pipeline/runners/local_runner.py).
        return "incomplete (stopped in Pusher): nothing recorded as pushed; the next run withdraws any unrecorded copy"
    pushed = (pusher.outputs.get("pushed_model") or [None])[0]
    if pushed is not None and metadata.custom_value(pushed, "pushed") == 1:
        version = metadata.custom_value(pushed, "pushed_version")
        return f"pushed {version}" if pusher.state == "COMPLETE" else f"nothing new ({version} already pushed)"
    reasons = []
    for node_id, key, reason in ((artifacts.EVALUATOR, "blessing", "not blessed"),
                                 (artifacts.SERVABILITY_CHECK, "blessing", "not servable")):
        artifact = (by_id.get(node_id).outputs.get(key) or [None])[0] if node_id in by_id else None
        if artifact is not None and metadata.custom_value(artifact, "blessed") != 1:
            reasons.append(reason)
    return "not pushed: " + (" and ".join(reasons) or "no blessing")


def list_runs(store: metadata_store.MetadataStore, pipeline_name: str) -> list[RunSummary]:
    """Pipeline runs and rollbacks, oldest first."""
    summaries = []
    for run_id in metadata.run_ids(store, pipeline_name):
        context = next(c for c in (store.get_context_by_type_and_name(kind, run_id)
                                   for kind in metadata.RUN_CONTEXT_TYPES) if c is not None)
        executions = store.get_executions_by_context(context.id)
        if not executions:
            continue
        start = min(e.create_time_since_epoch for e in executions) / 1000
        end = max(e.last_update_time_since_epoch for e in executions) / 1000
        summaries.append(RunSummary(run_id, start, end - start, _outcome(metadata.node_runs(store, run_id))))
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is not None:
        for execution in store.get_executions_by_context(pipeline.id):
            if store.get_execution_types_by_id([execution.type_id])[0].name != ROLLBACK_TYPE:
                continue
            props = execution.properties
            summaries.append(RunSummary(
                f"rollback-{props['new_version'].string_value}", execution.create_time_since_epoch / 1000, 0.0,
                f"rollback: version {props['to_version'].string_value} serves again as "
                f"{props['new_version'].string_value}"))
    summaries += [_monitor_summary(item) for item in monitor_record.passes(store, pipeline_name)]
    summaries += [RunSummary(f"release-{step.execution_id}", step.recorded_at, 0.0, release_record.describe(step))
                  for step in release_record.steps(store, pipeline_name)]
    return sorted(summaries, key=lambda s: s.started)


def _monitor_summary(item: monitor_record.MonitorPass) -> RunSummary:
    """A monitoring pass: its verdict, the first reason, what it captured and what it started."""
    reasons = [line for line in item.reasons.splitlines() if line]
    text = f"monitor: {item.verdict}"
    if reasons:
        text += f" ({reasons[0]}{f'; {len(reasons) - 1} more' if len(reasons) > 1 else ''})"
    if item.captured_rows:
        text += f"; captured {item.captured_rows} rows"
    if item.run_started:
        text += f"; {item.run_started}"
    return RunSummary(f"monitor-{item.execution_id}", item.started, 0.0, text)


def format_runs(summaries: list[RunSummary]) -> str:
    if not summaries:
        return "No runs recorded yet."
    # As wide as the longest run id: an Airflow run's (<pipeline>.<DAG run id>) is about 45 characters.
    width = max([34] + [len(s.run_id) for s in summaries])
    lines = [f"{'started (UTC)':20s} {'duration':>9s}  {'run':{width}s} outcome"]
    for s in summaries:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s.started))
        lines.append(f"{started:20s} {s.seconds:8.1f}s  {s.run_id:{width}s} {s.outcome}")
    return "\n".join(lines)
