"""Where a pushed model version came from, read from ML Metadata.

From the PushedModel artifact of a version, the walk goes up through the executions that
produced each input (Pusher, ServabilityCheck, Evaluator, Trainer, Tuner, Transform,
ExampleGen, and a Rollback when the version is a rolled-back copy) and collects every
artifact on the way, plus the statistics and anomalies computed from the same examples.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import time

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata
from pipeline.monitoring import monitor_record
from pipeline.release import release_record

INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
# The order a reader follows: from what serves back to the data.
SECTIONS = (("PushedModel", "pushed model"), ("InfraBlessing", "servability"), ("ModelBlessing", "blessing"),
            ("ModelEvaluation", "evaluation"), ("Model", "model"), ("HyperParameters", "tuned hyperparameters"),
            ("TransformGraph", "transform graph"), ("Schema", "schema"), ("ExampleStatistics", "statistics"),
            ("ExampleAnomalies", "anomalies"), ("Examples", "examples"))


class LineageError(ValueError):
    """The version is unknown to the metadata store."""


@dataclasses.dataclass
class Step:
    execution: metadata_store_pb2.Execution
    node: str  # Pusher, Trainer, Rollback, ...


@dataclasses.dataclass
class Lineage:
    version: str
    pushed: metadata_store_pb2.Artifact
    artifacts: list[tuple[str, metadata_store_pb2.Artifact, str]]  # (type name, artifact, producing node)
    steps: list[Step]
    live: list[metadata_store_pb2.Artifact] = dataclasses.field(default_factory=list)  # LiveQuality, oldest first
    releases: list = dataclasses.field(default_factory=list)  # ReleaseStep as canary or stable, oldest first


def pushed_models(store: metadata_store.MetadataStore) -> dict[str, metadata_store_pb2.Artifact]:
    """{version: PushedModel artifact} of every version pushed (or rolled back to), oldest first."""
    result = {}
    for artifact in sorted(store.get_artifacts_by_type("PushedModel"), key=lambda a: a.id):
        if metadata.custom_value(artifact, "pushed") == 1:
            version = str(metadata.custom_value(artifact, "pushed_version") or "")
            if version:
                result[version] = artifact
    return result


def find_pushed(store: metadata_store.MetadataStore, version: str) -> metadata_store_pb2.Artifact:
    version = os.path.basename(str(version).rstrip("/"))
    known = pushed_models(store)
    if version not in known:
        raise LineageError(f"no pushed version {version} in the metadata store; pushed versions: "
                           f"{', '.join(known) or 'none'}")
    return known[version]


def node_name(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution) -> str:
    for context in store.get_contexts_by_execution(execution.id):
        if context.type in metadata.NODE_CONTEXT_TYPES:
            return context.name.rsplit(".", 1)[-1]
    return store.get_execution_types_by_id([execution.type_id])[0].name.rsplit(".", 1)[-1]


def trace(store: metadata_store.MetadataStore, version: str) -> Lineage:
    pushed = find_pushed(store, version)
    types = {t.id: t.name for t in store.get_artifact_types()}
    seen_artifacts: dict[int, tuple[str, metadata_store_pb2.Artifact, str]] = {}
    seen_executions: dict[int, Step] = {}
    frontier = [pushed.id]
    seen_artifacts[pushed.id] = (types[pushed.type_id], pushed, "")
    while frontier:
        artifact_id = frontier.pop()
        # A cached re-run records the same artifact as its output again: the first producer made it.
        producers = sorted((e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in OUTPUT_EVENTS),
                           key=lambda e: e.execution_id)[:1]
        for event in producers:
            known = event.execution_id in seen_executions
            if not known:
                execution = store.get_executions_by_id([event.execution_id])[0]
                seen_executions[execution.id] = Step(execution, node_name(store, execution))
            step = seen_executions[event.execution_id]
            name, artifact, _ = seen_artifacts[artifact_id]
            seen_artifacts[artifact_id] = (name, artifact, step.node)
            if known:
                continue
            execution = step.execution
            events = store.get_events_by_execution_ids([execution.id])
            # Inputs lead further up; other outputs of the same step (Evaluator's evaluation
            # beside its blessing) belong to the story too.
            related = [e.artifact_id for e in events if e.type in INPUT_EVENTS + OUTPUT_EVENTS]
            for other in store.get_artifacts_by_id([a for a in related if a not in seen_artifacts]):
                seen_artifacts[other.id] = (types[other.type_id], other, step.node)
                if any(e.artifact_id == other.id and e.type in INPUT_EVENTS for e in events):
                    frontier.append(other.id)
    # Statistics and anomalies are computed from the examples, not upstream of the model.
    examples = [a for name, a, _ in seen_artifacts.values() if name == "Examples"]
    for consumer in store.get_events_by_artifact_ids([a.id for a in examples]):
        if consumer.type not in INPUT_EVENTS:
            continue
        execution = store.get_executions_by_id([consumer.execution_id])[0]
        node = node_name(store, execution)
        outputs = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id]) if e.type in OUTPUT_EVENTS]
        for other in store.get_artifacts_by_id([a for a in outputs if a not in seen_artifacts]):
            if types[other.type_id] in ("ExampleStatistics", "ExampleAnomalies"):
                seen_artifacts[other.id] = (types[other.type_id], other, node)
    steps = sorted(seen_executions.values(), key=lambda s: s.execution.id)
    for step in steps:
        if step.node.endswith("ExampleGen"):
            spans = _spans_read(step.execution)
            for name, artifact, node in seen_artifacts.values():
                if name == "Examples" and node == step.node and spans:
                    artifact.custom_properties["lineage_spans"].string_value = spans
    name = os.path.basename(str(version).rstrip("/"))
    releases = release_record.steps_of(store, pushed.id)
    return Lineage(name, pushed, list(seen_artifacts.values()), steps, monitor_record.live_qualities(store, name),
                   releases)


def _spans_read(execution: metadata_store_pb2.Execution) -> str:
    """'span-1, span-2 under <input_base>' from ExampleGen's recorded input settings."""
    props = execution.custom_properties
    base = props["input_base"].string_value if "input_base" in props else ""
    try:
        patterns = [split["pattern"] for split in json.loads(props["input_config"].string_value)["splits"]]
    except (KeyError, ValueError):
        return ""
    folders = set()
    for pattern in patterns:
        # {SPAN} is ExampleGen's placeholder; the artifact's span property says which one was read.
        for path in glob.glob(os.path.join(base, re.sub(r"\{SPAN[^}]*\}", "*", pattern))):
            folders.add(os.path.basename(os.path.dirname(path)))
    return f"{', '.join(sorted(folders))} under {base}" if folders else base


def _describe(type_name: str, artifact: metadata_store_pb2.Artifact) -> str:
    """What a reader wants to know of an artifact beyond its location."""
    props = {**{k: v for k, v in artifact.properties.items()}, **dict(artifact.custom_properties.items())}

    def value(name):
        v = props.get(name)
        return getattr(v, v.WhichOneof("value")) if v is not None and v.WhichOneof("value") else None

    if type_name == "Examples":
        if value("span") is None:
            return "transformed"
        read = value("lineage_spans")
        return f"span {value('span')}" + (f" (read {read})" if read else "") + f", splits {value('split_names')}"
    if type_name in ("ModelBlessing", "InfraBlessing"):
        text = "blessed" if value("blessed") == 1 else "NOT blessed"
        report = value("servability_report")
        return text + (f" ({report})" if report else "")
    if type_name == "PushedModel":
        extra = f", a copy of version {value('rolled_back_to')} made by rollback" if value("rolled_back_to") else ""
        return f"{value('pushed_destination')}{extra}"
    if type_name == "Model":
        path = os.path.join(artifact.uri, "Format-Serving", "assets.extra", "hyperparameters.json")
        if os.path.exists(path):
            return "trained with " + json.dumps(json.load(open(path)), sort_keys=True)
    if type_name == "HyperParameters":
        path = os.path.join(artifact.uri, "best_hyperparameters.txt")
        if os.path.exists(path):
            return "tuned values " + json.dumps(json.load(open(path)).get("values", {}), sort_keys=True)
    return ""


def format_lineage(lineage: Lineage) -> str:
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(lineage.pushed.create_time_since_epoch / 1000))
    lines = [f"Lineage of version {lineage.version} (recorded {created} UTC):"]
    by_type: dict[str, list] = {}
    for type_name, artifact, node in lineage.artifacts:
        by_type.setdefault(type_name, []).append((artifact, node))
    for type_name, label in SECTIONS:
        for artifact, node in sorted(by_type.get(type_name, []), key=lambda item: -item[0].id):
            detail = _describe(type_name, artifact)
            lines.append(f"  {label:22s} {detail + '  ' if detail else ''}[{node or '?'}, {artifact.uri}]")
    lines.append("  steps: " + " <- ".join(f"{s.node}#{s.execution.id}" for s in reversed(lineage.steps)))
    lines += [f"  {'live quality':22s} {monitor_record.describe_live(artifact)}  [monitor, {artifact.uri}]"
              for artifact in lineage.live]
    lines += [f"  {'release step':22s} {release_record.describe(step)}  [release, execution {step.execution_id}]"
              for step in lineage.releases]
    return "\n".join(lines)
