"""Read what a pipeline run did from ML Metadata: node states and output artifacts."""
from __future__ import annotations

import dataclasses

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

STATE_NAMES = {value: name for name, value in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class NodeRun:
    node_id: str
    state: str  # COMPLETE, CACHED, FAILED, ...
    outputs: dict[str, list[metadata_store_pb2.Artifact]]


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def run_ids(store: metadata_store.MetadataStore, pipeline_name: str) -> list[str]:
    """Run ids of `pipeline_name`, oldest first."""
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    runs = [context for context in store.get_children_contexts_by_context(pipeline.id)
            if context.type == "pipeline_run"] or [
        context for context in store.get_contexts_by_type("pipeline_run")]
    return [context.name for context in sorted(runs, key=lambda c: c.id)]


def node_runs(store: metadata_store.MetadataStore, run_id: str) -> list[NodeRun]:
    """The executions of one run, in the order they started."""
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run is None:
        raise ValueError(f"no pipeline run {run_id!r} in the metadata store")
    result = []
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node = next((c.name for c in store.get_contexts_by_execution(execution.id) if c.type == "node"), "?")
        outputs: dict[str, list] = {}
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ""
            outputs.setdefault(key, []).append(artifacts[event.artifact_id])
        result.append(NodeRun(node.split(".", 1)[-1], STATE_NAMES.get(execution.last_known_state, "?"), outputs))
    return result


def custom_value(artifact: metadata_store_pb2.Artifact, name: str):
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return value.WhichOneof("value") and getattr(value, value.WhichOneof("value"))
