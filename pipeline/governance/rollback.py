"""`taxi-pipeline rollback --to VERSION`: serve an earlier pushed version again, and record it.

The earlier version is copied to a new, highest version number in the serving folder:
tensorflow_model_server and our server both serve the newest version under their default
`latest` policy, so both pick it up by themselves, and the next pushed model still
replaces it as usual. With a model config file, a version label (`stable` by default) is
moved to the copy as well. The action is an execution of type Rollback in ML Metadata,
in the pipeline's context, from the old PushedModel to a new one, so `lineage` and `runs`
show it.
"""
from __future__ import annotations

import os
import shutil
import time

from google.protobuf import text_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.config import model_server_config_pb2

from pipeline.config import PipelineConfig
from pipeline.governance import lineage
from pipeline.governance.runs import ROLLBACK_TYPE
from serving.server.model_store import list_versions


class RollbackError(ValueError):
    """The rollback cannot be done as asked; nothing was changed."""


def _writable_store(path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def _move_label(model_config_path: str, model_name: str, label: str, version: int) -> None:
    config = text_format.Parse(open(model_config_path).read(), model_server_config_pb2.ModelServerConfig())
    entries = [entry for entry in config.model_config_list.config if entry.name == model_name]
    if not entries:
        raise RollbackError(f"{model_config_path}: no model named {model_name!r}")
    entries[0].version_labels[label] = version
    staging = model_config_path + ".rollback"
    with open(staging, "w") as out:
        out.write(text_format.MessageToString(config))
    os.replace(staging, model_config_path)  # a polling server never reads half a file


def rollback(config: PipelineConfig, to_version: str, model_config_path: str | None = None,
             label: str = "stable") -> int:
    """Serve `to_version` again as a new version; returns the new version number."""
    if not os.path.exists(config.metadata_path):
        raise RollbackError(f"no metadata store at {config.metadata_path}: nothing was pushed from "
                            f"{config.output_root}")
    store = _writable_store(config.metadata_path)
    version = os.path.basename(str(to_version).rstrip("/"))
    target = lineage.find_pushed(store, version)
    source = os.path.join(config.serving_dir, version)
    if not os.path.exists(os.path.join(source, "saved_model.pb")):
        raise RollbackError(f"version {version} is in the metadata store but {source} is gone from the "
                            "serving folder; it cannot serve again")
    new_version = max(int(time.time()), max(list_versions(config.serving_dir), default=0) + 1)
    destination = os.path.join(config.serving_dir, str(new_version))
    # Copied under a name servers ignore, then renamed: a server never sees half a version.
    staging = os.path.join(config.serving_dir, f".rollback-{new_version}")
    shutil.copytree(source, staging)
    os.rename(staging, destination)
    if model_config_path:
        _move_label(model_config_path, config.pipeline_name, label, new_version)

    execution_type = metadata_store_pb2.ExecutionType(name=ROLLBACK_TYPE)
    execution_type.properties["to_version"] = metadata_store_pb2.STRING
    execution_type.properties["new_version"] = metadata_store_pb2.STRING
    execution = metadata_store_pb2.Execution(
        type_id=store.put_execution_type(execution_type, can_add_fields=True),
        last_known_state=metadata_store_pb2.Execution.COMPLETE)
    execution.properties["to_version"].string_value = version
    execution.properties["new_version"].string_value = str(new_version)
    copy = metadata_store_pb2.Artifact(type_id=target.type_id, uri=destination,
                                       state=metadata_store_pb2.Artifact.LIVE)
    copy.custom_properties["pushed"].int_value = 1
    copy.custom_properties["pushed_destination"].string_value = destination
    copy.custom_properties["pushed_version"].string_value = str(new_version)
    copy.custom_properties["rolled_back_to"].string_value = version

    def event(kind, key):
        return metadata_store_pb2.Event(type=kind, path=metadata_store_pb2.Event.Path(steps=[
            metadata_store_pb2.Event.Path.Step(key=key), metadata_store_pb2.Event.Path.Step(index=0)]))

    pipeline_context = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
    store.put_execution(execution, [(target, event(metadata_store_pb2.Event.INPUT, "pushed_model")),
                                    (copy, event(metadata_store_pb2.Event.OUTPUT, "pushed_model"))],
                        [pipeline_context] if pipeline_context else [])
    return new_version
