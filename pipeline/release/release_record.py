"""Release steps in ML Metadata, beside the runs that pushed the versions they compare.

Each step is an execution of type ReleaseStep in the context `<pipeline>.release`, with
the canary and stable versions, the canary's weight, the verdict (advance, promote,
abort, hold), its reason and the evidence of every check as JSON. Its inputs are the
PushedModel artifacts of both versions (when ML Metadata knows them), so `lineage
VERSION` lists the steps a version went through, and `runs` lists every step.
"""
from __future__ import annotations

import dataclasses
import json
import time

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata

EXECUTION_TYPE, CONTEXT_TYPE = "ReleaseStep", "release"
ADVANCE, PROMOTE, ABORT, HOLD = "advance", "promote", "abort", "hold"


@dataclasses.dataclass
class ReleaseStep:
    execution_id: int
    recorded_at: float
    canary_version: int
    stable_version: int
    weight: float
    verdict: str
    reason: str
    evidence: list[dict]


def _pushed_ids(store: metadata_store.MetadataStore, versions: tuple[int, int]) -> dict[int, int]:
    from pipeline.governance.lineage import pushed_models

    known = pushed_models(store)
    return {version: known[str(version)].id for version in versions if str(version) in known}


def record_step(metadata_path: str, pipeline_name: str, *, canary_version: int, stable_version: int, weight: float,
                verdict: str, reason: str, evidence: list[dict], step_started: float) -> int:
    """Record one step; returns its execution id."""
    store = metadata.open_store(metadata_path, metadata.READ_WRITE)
    execution = metadata_store_pb2.Execution(
        type_id=store.put_execution_type(metadata_store_pb2.ExecutionType(name=EXECUTION_TYPE)),
        last_known_state=metadata_store_pb2.Execution.COMPLETE)
    for name, value in (("canary_version", canary_version), ("stable_version", stable_version),
                        ("verdict", verdict), ("reason", reason), ("evidence", json.dumps(evidence)),
                        ("step_started", step_started), ("recorded_at", time.time())):
        field = execution.custom_properties[name]
        if isinstance(value, int):
            field.int_value = value
        elif isinstance(value, float):
            field.double_value = value
        else:
            field.string_value = value
    execution.custom_properties["weight"].double_value = float(weight)
    events = []
    for role, version in (("canary", canary_version), ("stable", stable_version)):
        artifact_id = _pushed_ids(store, (version,)).get(version)
        if artifact_id is not None:
            event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)
            event.path.steps.add().key = f"{role}_model"
            events.append((store.get_artifacts_by_id([artifact_id])[0], event))
    context = metadata_store_pb2.Context(
        type_id=store.put_context_type(metadata_store_pb2.ContextType(name=CONTEXT_TYPE)),
        name=f"{pipeline_name}.release")
    execution_id, _, _ = store.put_execution(execution, events, [context], reuse_context_if_already_exist=True)
    return execution_id


def _step(execution: metadata_store_pb2.Execution) -> ReleaseStep:
    value = lambda name, default=None: metadata.custom_value(execution, name) or default  # noqa: E731
    return ReleaseStep(execution.id, float(value("recorded_at", 0.0)), int(value("canary_version", 0)),
                       int(value("stable_version", 0)), float(value("weight", 0.0)), str(value("verdict", "")),
                       str(value("reason", "")), json.loads(value("evidence", "[]")))


def steps(store: metadata_store.MetadataStore, pipeline_name: str, canary_version: int | None = None
          ) -> list[ReleaseStep]:
    """Every step recorded for `pipeline_name` (of one canary version when given), oldest first."""
    context = store.get_context_by_type_and_name(CONTEXT_TYPE, f"{pipeline_name}.release")
    if context is None:
        return []
    found = [_step(e) for e in sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)]
    return [step for step in found if canary_version is None or step.canary_version == canary_version]


def steps_of(store: metadata_store.MetadataStore, pushed_id: int) -> list[ReleaseStep]:
    """The steps that compared the PushedModel `pushed_id` (as canary or as stable), oldest first."""
    kind = next((t.id for t in store.get_execution_types() if t.name == EXECUTION_TYPE), None)
    if kind is None:
        return []
    ids = sorted({e.execution_id for e in store.get_events_by_artifact_ids([pushed_id])})
    return [_step(e) for e in store.get_executions_by_id(ids) if e.type_id == kind]


def describe(step: ReleaseStep) -> str:
    """One line of a step, for `runs` and `lineage`."""
    return (f"release: canary {step.canary_version} at {step.weight:g}% vs stable {step.stable_version}: "
            f"{step.verdict} ({step.reason})")
