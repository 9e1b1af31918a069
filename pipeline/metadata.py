"""Read what a pipeline run did from ML Metadata: node states and output artifacts."""
from __future__ import annotations

import dataclasses
import os
import urllib.parse

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

STATE_NAMES = {value: name for name, value in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class NodeRun:
    node_id: str
    state: str  # COMPLETE, CACHED, FAILED, ...
    outputs: dict[str, list[metadata_store_pb2.Artifact]]


# Where a server store's password comes from: never the config, the command line or a log.
PASSWORD_VARIABLE = "TAXI_METADATA_PASSWORD"
PASSWORD_FILE_VARIABLE = "TAXI_METADATA_PASSWORD_FILE"
SERVER_SCHEMES = {"postgresql": 5432, "mysql": 3306}
# The mode of every writer (runs, monitor passes, releases, provenance); readers open read-only.
READ_WRITE = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE


def is_server(location: str) -> bool:
    """Whether `location` (the metadata_store setting) names a database server, not a SQLite file."""
    return urllib.parse.urlsplit(str(location)).scheme in SERVER_SCHEMES


def connection_config(location: str,
                      mode: int = READ_WRITE,
                      ) -> metadata_store_pb2.ConnectionConfig:
    """ML Metadata's connection for `location`: a SQLite file path, or
    postgresql://USER@HOST[:PORT]/DATABASE or mysql://USER@HOST[:PORT]/DATABASE.

    `mode` applies to SQLite only; a server's access is its user's grants.
    """
    config = metadata_store_pb2.ConnectionConfig()
    if not is_server(location):
        config.sqlite.filename_uri = str(location)
        config.sqlite.connection_mode = mode
        return config
    url = urllib.parse.urlsplit(location)
    if url.password is not None:
        raise ValueError(f"metadata_store {_redacted(url)}: a password in the setting would end up in configs and "
                         f"logs; remove it and set {PASSWORD_VARIABLE}, or {PASSWORD_FILE_VARIABLE} to a file "
                         "holding it")
    database = url.path.strip("/")
    if not (url.hostname and url.username and database):
        raise ValueError(f"metadata_store {location!r}: write it as {url.scheme}://USER@HOST[:PORT]/DATABASE")
    password = _password()
    port = url.port or SERVER_SCHEMES[url.scheme]
    if url.scheme == "postgresql":
        server = config.postgresql
        server.host, server.port, server.dbname, server.user = url.hostname, str(port), database, url.username
    else:
        server = config.mysql
        server.host, server.port, server.database, server.user = url.hostname, port, database, url.username
    if password:
        server.password = password
    return config


def _password() -> str:
    path = os.environ.get(PASSWORD_FILE_VARIABLE)
    if path:
        try:
            with open(path) as file:
                return file.read().strip()
        except OSError as error:
            raise ValueError(f"{PASSWORD_FILE_VARIABLE}={path}: cannot read the metadata store's password "
                             f"({error.strerror})") from None
    return os.environ.get(PASSWORD_VARIABLE, "")


def _redacted(url: urllib.parse.SplitResult) -> str:
    return url._replace(netloc=f"{url.username}:***@{url.hostname}" + (f":{url.port}" if url.port else "")).geturl()


def store_exists(location: str) -> bool:
    """False only for a SQLite file that is not there yet (nothing ran); a server is asked when opened."""
    return is_server(location) or os.path.exists(location)


def open_store(location: str, mode: int = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY,
               ) -> metadata_store.MetadataStore:
    """The one way this project opens its ML Metadata store (SQLite file or database server, see
    connection_config); a SQLite file read-only unless `mode` says otherwise."""
    connection = connection_config(location, mode)
    try:
        return metadata_store.MetadataStore(connection)
    except RuntimeError as error:  # MLMD says only "connection pointer is NULL" for a refused login
        if not is_server(location):
            raise
        raise ConnectionError(
            f"cannot open ML Metadata at {location}: {str(error).strip()}. Check that the server is up and "
            f"reachable, that the user exists, and the password in {PASSWORD_VARIABLE} or the file "
            f"{PASSWORD_FILE_VARIABLE} names (the server's log says which)") from None


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
