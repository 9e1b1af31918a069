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


def open_store(metadata_path: str, mode: int = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY,
               ) -> metadata_store.MetadataStore:
    """The one way this project opens its ML Metadata store; read-only unless `mode` says otherwise."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = mode
    return metadata_store.MetadataStore(config)


# Context types of a run and of one component in it: IR-based runners (LocalDagRunner,
# Kubeflow v2) use the first pair, TFX's Airflow runner the second.
RUN_CONTEXT_TYPES = ("pipeline_run", "run")
NODE_CONTEXT_TYPES = ("node", "component_run")


def run_ids(store: metadata_store.MetadataStore, pipeline_name: str) -> list[str]:
    """Run ids of `pipeline_name` from any runner, oldest first."""
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    runs = [context for context in store.get_contexts_by_type("pipeline_run")
            if pipeline.id in {parent.id for parent in store.get_parent_contexts_by_context(context.id)}]
    runs += [context for context in store.get_contexts_by_type("run")
             if context.name.startswith(pipeline_name + ".")]
    return [context.name for context in sorted(runs, key=lambda c: c.id)]


def node_runs(store: metadata_store.MetadataStore, run_id: str) -> list[NodeRun]:
    """The executions of one run, in the order they started."""
    run = next((context for context in (store.get_context_by_type_and_name(kind, run_id)
                                         for kind in RUN_CONTEXT_TYPES) if context is not None), None)
    if run is None:
        raise ValueError(f"no pipeline run {run_id!r} in the metadata store")
    result = []
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node = next((c.name for c in store.get_contexts_by_execution(execution.id)
                     if c.type in NODE_CONTEXT_TYPES), "?")
        outputs: dict[str, list] = {}
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ""
            outputs.setdefault(key, []).append(artifacts[event.artifact_id])
        result.append(NodeRun(node.rsplit(".", 1)[-1], STATE_NAMES.get(execution.last_known_state, "?"), outputs))
    return result


def custom_value(artifact: metadata_store_pb2.Artifact, name: str):
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return value.WhichOneof("value") and getattr(value, value.WhichOneof("value"))
