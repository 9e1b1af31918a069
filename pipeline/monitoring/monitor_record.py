"""A monitoring pass in ML Metadata, beside the runs it judges.

Each pass is an execution of type LiveMonitor in the context `<pipeline>.monitor`, with
the window, the verdict and its reasons. Its inputs are the PushedModel artifacts of the
versions it measured (so `lineage VERSION` finds live quality from the pushed model), its
outputs one LiveQuality artifact per version (overall live AUC, coverage, the worst gated
slice; the report folder as uri) and the CapturedSpan it wrote, if any.
"""
from __future__ import annotations

import dataclasses
import time

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata

EXECUTION_TYPE, QUALITY_TYPE, SPAN_TYPE, CONTEXT_TYPE = "LiveMonitor", "LiveQuality", "CapturedSpan", "monitor"


@dataclasses.dataclass
class VersionQuality:
    version: int
    logged: int
    labelled: int
    coverage: float
    auc: float | None
    offline_auc: float | None
    worst_slice: str
    worst_slice_auc: float | None


@dataclasses.dataclass
class MonitorPass:
    """What a pass recorded, as `runs` prints it."""
    execution_id: int
    started: float
    window_start: int
    window_end: int
    verdict: str
    reasons: str
    run_started: str
    captured_rows: int


def _set(target, name: str, value) -> None:
    if value is None:
        return
    field = target.custom_properties[name]
    if isinstance(value, bool):
        field.int_value = int(value)
    elif isinstance(value, int):
        field.int_value = value
    elif isinstance(value, float):
        field.double_value = value
    else:
        field.string_value = str(value)


def _type_id(store: metadata_store.MetadataStore, kind, name: str) -> int:
    put = {metadata_store_pb2.ArtifactType: store.put_artifact_type,
           metadata_store_pb2.ExecutionType: store.put_execution_type,
           metadata_store_pb2.ContextType: store.put_context_type}[kind]
    return put(kind(name=name))


def _existing_artifact_type(store: metadata_store.MetadataStore, name: str) -> int | None:
    """The id of an artifact type, None when no pass has created it yet."""
    return next((t.id for t in store.get_artifact_types() if t.name == name), None)


def record_pass(metadata_path: str, pipeline_name: str, *, window_start: float, window_end: float, verdict: str,
                reasons: list[str], notes: list[str], report_uri: str, versions: list[VersionQuality],
                captured: tuple[str, int] | None, pushed_ids: dict[int, int]) -> int:
    """Record one pass; returns its execution id. `pushed_ids`: {version: PushedModel artifact id}."""
    store = metadata.open_store(metadata_path, metadata.READ_WRITE)
    execution = metadata_store_pb2.Execution(type_id=_type_id(store, metadata_store_pb2.ExecutionType,
                                                                EXECUTION_TYPE),
                                             last_known_state=metadata_store_pb2.Execution.COMPLETE)
    for name, value in (("window_start", int(window_start)), ("window_end", int(window_end)),
                        ("verdict", verdict), ("reasons", "\n".join(reasons)), ("notes", "\n".join(notes)),
                        ("started_at", time.time()), ("report", report_uri)):
        _set(execution, name, value)
    events = []
    for version, artifact_id in pushed_ids.items():
        event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)
        event.path.steps.add().key = f"pushed_model_{version}"
        events.append((store.get_artifacts_by_id([artifact_id])[0], event))
    quality_type = _type_id(store, metadata_store_pb2.ArtifactType, QUALITY_TYPE)
    for quality in versions:
        artifact = metadata_store_pb2.Artifact(type_id=quality_type, uri=report_uri,
                                               state=metadata_store_pb2.Artifact.LIVE)
        for name, value in dataclasses.asdict(quality).items():
            _set(artifact, name, value)
        _set(artifact, "window_start", int(window_start))
        _set(artifact, "window_end", int(window_end))
        event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
        event.path.steps.add().key = f"live_quality_{quality.version}"
        events.append((artifact, event))
    if captured is not None:
        artifact = metadata_store_pb2.Artifact(type_id=_type_id(store, metadata_store_pb2.ArtifactType, SPAN_TYPE),
                                               uri=captured[0], state=metadata_store_pb2.Artifact.LIVE)
        for name, value in (("rows", captured[1]), ("window_start", int(window_start)),
                            ("window_end", int(window_end))):
            _set(artifact, name, value)
        event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
        event.path.steps.add().key = "captured_span"
        events.append((artifact, event))
    context = metadata_store_pb2.Context(type_id=_type_id(store, metadata_store_pb2.ContextType, CONTEXT_TYPE),
                                         name=f"{pipeline_name}.monitor")
    execution_id, _, _ = store.put_execution(execution, events, [context], reuse_context_if_already_exist=True)
    return execution_id


def note_run_started(metadata_path: str, execution_id: int, text: str) -> None:
    """What the pass's trigger started (`run: pushed 3`, `not started: a run holds the lock`)."""
    store = metadata.open_store(metadata_path, metadata.READ_WRITE)
    execution = store.get_executions_by_id([execution_id])[0]
    _set(execution, "run_started", text)
    store.put_execution(execution, [], [])


def passes(store: metadata_store.MetadataStore, pipeline_name: str) -> list[MonitorPass]:
    """Every pass recorded for `pipeline_name`, oldest first."""
    context = store.get_context_by_type_and_name(CONTEXT_TYPE, f"{pipeline_name}.monitor")
    if context is None:
        return []
    result = []
    for execution in sorted(store.get_executions_by_context(context.id), key=lambda e: e.id):
        outputs = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                   if e.type == metadata_store_pb2.Event.OUTPUT]
        captured = 0
        span_type = _existing_artifact_type(store, SPAN_TYPE)
        for artifact in store.get_artifacts_by_id(outputs):
            if artifact.type_id == span_type:
                captured += int(metadata.custom_value(artifact, "rows") or 0)
        value = lambda name, default="": metadata.custom_value(execution, name) or default  # noqa: E731
        result.append(MonitorPass(execution.id, float(value("started_at", 0.0)), int(value("window_start", 0)),
                                  int(value("window_end", 0)), str(value("verdict")), str(value("reasons")),
                                  str(value("run_started")), captured))
    return result


def live_qualities(store: metadata_store.MetadataStore, version: str) -> list[metadata_store_pb2.Artifact]:
    """The LiveQuality artifacts recorded for a pushed version, oldest first."""
    if _existing_artifact_type(store, QUALITY_TYPE) is None:
        return []
    return sorted((a for a in store.get_artifacts_by_type(QUALITY_TYPE)
                   if str(metadata.custom_value(a, "version")) == str(version)), key=lambda a: a.id)


def describe_live(artifact: metadata_store_pb2.Artifact) -> str:
    """One line of a LiveQuality artifact, for `lineage` and the model card."""
    value = lambda name: metadata.custom_value(artifact, name)  # noqa: E731
    window = " to ".join(time.strftime("%Y-%m-%d %H:%M", time.gmtime(value(name) or 0))
                         for name in ("window_start", "window_end"))
    auc, offline, worst = value("auc"), value("offline_auc"), value("worst_slice_auc")
    text = f"window {window} UTC: live AUC {'n/a' if auc is None else f'{auc:.4f}'}"
    text += f" (offline {offline:.4f})" if offline is not None else ""
    text += f", {value('labelled') or 0}/{value('logged') or 0} predictions with an outcome"
    if worst is not None:
        text += f", worst gated slice {value('worst_slice')} AUC {worst:.4f}"
    return text
