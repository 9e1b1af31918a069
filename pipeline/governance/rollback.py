"""`taxi-pipeline rollback --to VERSION`: serve an earlier pushed version again, and record it.

The earlier version is copied to a new, highest version number in the serving folder
(under a hidden name, then renamed: no server sees half a version). Without a model
config that is all: tensorflow_model_server and our server serve the newest version
under their default `latest` policy, and the next pushed model replaces it as usual.

With a model config (serving/deploy/models.config, as production_config writes it), a
version label (`stable` by default) is moved to the copy in the order TF Serving
requires, since a label may name only a version the server has loaded (AVAILABLE):

1. the copy is added to the model's `specific` version list, labels unchanged (no version
   is dropped, so every label keeps serving); a server polling the file loads the copy;
2. once the server has loaded it, the label is moved.

Written at once, tensorflow_model_server refuses the config at every poll ("Request to
assign label to version ... which is not currently available for inference") and keeps
the old one. Given the `server` address (REST `http://host:8501` or gRPC `host:8500`),
rollback waits for step 2 itself through the model-status API. Without it, rollback stops
after step 1 with RollbackPending; the same command run again once the copy is loaded
finishes that rollback (moves the label, copies nothing).

The action is an execution of type Rollback in ML Metadata, in the pipeline's context,
from the old PushedModel to a new one, so `lineage`, `runs` and the baseline resolver
(pipeline/resolvers.py) see it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

from google.protobuf import text_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.config import model_server_config_pb2

from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.governance import lineage
from pipeline.governance.runs import ROLLBACK_TYPE
from serving.deploy.production_config import labels_not_listed
from serving.server.model_store import list_versions


class RollbackError(ValueError):
    """The rollback cannot be done as asked; nothing was changed."""


class RollbackPending(RollbackError):
    """The copy is made, recorded and listed in the model config, but the label is not moved yet."""

    def __init__(self, message: str, new_version: int):
        super().__init__(message)
        self.new_version = new_version


# The model config edits.

def read_entry(model_config_path: str, model_name: str):
    """(the whole config, the model's entry in it)."""
    try:
        config = text_format.Parse(open(model_config_path).read(), model_server_config_pb2.ModelServerConfig())
    except (OSError, text_format.ParseError) as error:
        raise RollbackError(f"{model_config_path}: not a readable text ModelServerConfig: {error}") from None
    entries = [entry for entry in config.model_config_list.config if entry.name == model_name]
    if not entries:
        raise RollbackError(f"{model_config_path}: no model named {model_name!r}")
    return config, entries[0]


def _list_labelled(entry, also: tuple[int, ...] = ()) -> None:
    """Under a `specific` policy, list `also` and every version a label names; drop none.

    `latest` and `all` policies already load the newest version, the one rollback makes.
    """
    if entry.model_version_policy.WhichOneof("policy_choice") != "specific":
        return
    specific = entry.model_version_policy.specific
    versions = sorted(set(specific.versions) | set(entry.version_labels.values()) | set(also))
    del specific.versions[:]
    specific.versions.extend(versions)


def _write(model_config_path: str, config) -> None:
    staging = model_config_path + ".rollback"
    with open(staging, "w") as out:
        out.write(text_format.MessageToString(config))
    os.replace(staging, model_config_path)  # a polling server never reads half a file


def _edit(model_config_path: str, model_name: str, edit) -> None:
    config, entry = read_entry(model_config_path, model_name)
    before = text_format.MessageToString(config)
    edit(entry)
    unlisted = labels_not_listed(entry)
    if unlisted:  # never write a config TF Serving refuses
        raise RollbackError(f"{model_config_path}: labels {unlisted} would name versions the policy does not load")
    if text_format.MessageToString(config) != before:
        _write(model_config_path, config)


def _list_version(model_config_path: str, model_name: str, version: int) -> None:
    """Step 1: the server is to load `version`; the labels stay where they are."""
    _edit(model_config_path, model_name, lambda entry: _list_labelled(entry, (version,)))


def move_label(model_config_path: str, model_name: str, label: str, version: int) -> None:
    """Step 2: `label` names `version`, which stays listed (with every other labelled version)."""
    def move(entry):
        entry.version_labels[label] = version
        _list_labelled(entry)
    _edit(model_config_path, model_name, move)


# What the server says of a version.

def _version_state(server: str, model_name: str, version: int) -> tuple[str | None, str]:
    """(state, error message) of `version` from TF Serving's model-status API; (None, why) if not known (yet)."""
    if server.startswith(("http://", "https://")):
        url = f"{server.rstrip('/')}/v1/models/{urllib.parse.quote(model_name, safe='')}/versions/{version}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                statuses = json.load(reply).get("model_version_status", [])
        except urllib.error.HTTPError as error:  # 404: the server has not seen the version yet
            return None, f"HTTP {error.code}"
        except (urllib.error.URLError, OSError, ValueError) as error:  # down or restarting: ask again
            return None, str(error)
        for status in statuses:
            if str(status.get("version")) == str(version):
                return status.get("state"), status.get("status", {}).get("error_message", "")
        return None, "not in the status"
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model_name
    request.model_spec.version.value = version
    try:
        with grpc.insecure_channel(server) as channel:
            reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    except grpc.RpcError as error:
        return None, f"{error.code().name}: {error.details()}"
    for status in reply.model_version_status:
        if status.version == version:
            return (get_model_status_pb2.ModelVersionStatus.State.Name(status.state),
                    status.status.error_message)
    return None, "not in the status"


def _wait_until_available(server: str, model_name: str, version: int, wait_seconds: float) -> tuple[bool, str]:
    """(loaded, what the server said last); gives up early when the server failed to load it."""
    deadline = time.monotonic() + wait_seconds
    while True:
        state, detail = _version_state(server, model_name, version)
        if state == "AVAILABLE":
            return True, state
        if state == "END" and detail:  # the load failed: say so now; a re-run finishes once it loads
            return False, f"it failed to load it: {detail}"
        if time.monotonic() >= deadline:
            return False, f"it did not report it AVAILABLE within {wait_seconds:g} s (last: {state or detail})"
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


# The rollback.

def _unfinished_copy(store: metadata_store.MetadataStore, version: str, serving_dir: str) -> int | None:
    """The copy an earlier rollback to `version` made, if it is still the newest version: a re-run finishes
    that rollback instead of copying again."""
    copies = [int(execution.properties["new_version"].string_value)
              for execution in store.get_executions_by_type(ROLLBACK_TYPE)
              if execution.properties["to_version"].string_value == version]
    versions = list_versions(serving_dir)
    return versions[-1] if copies and versions and versions[-1] == max(copies) else None


def _record(store: metadata_store.MetadataStore, config: PipelineConfig, target: metadata_store_pb2.Artifact,
            version: str, new_version: int, destination: str) -> None:
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


def rollback(config: PipelineConfig, to_version: str, model_config_path: str | None = None,
             label: str = "stable", server: str | None = None, wait_seconds: float = 300.0) -> int:
    """Serve `to_version` again as a new version; returns the new version number.

    With `model_config_path`, `label` is moved to it once `server` reports it loaded; without
    `server`, RollbackPending after step 1 (see the module docstring), and a re-run moves it.
    """
    if not metadata.store_exists(config.metadata_path):
        raise RollbackError(f"no metadata store at {config.metadata_path}: nothing was pushed from "
                            f"{config.output_root}")
    store = metadata.open_store(config.metadata_path, metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE)
    version = os.path.basename(str(to_version).rstrip("/"))
    target = lineage.find_pushed(store, version)
    source = os.path.join(config.serving_dir, version)
    if not os.path.exists(os.path.join(source, "saved_model.pb")):
        raise RollbackError(f"version {version} is in the metadata store but {source} is gone from the "
                            "serving folder; it cannot serve again")
    entry = read_entry(model_config_path, config.pipeline_name)[1] if model_config_path else None  # before any change
    new_version = _unfinished_copy(store, version, config.serving_dir)
    rerun = new_version is not None
    if not rerun:
        new_version = max(int(time.time()), max(list_versions(config.serving_dir), default=0) + 1)
        destination = os.path.join(config.serving_dir, str(new_version))
        # Copied under a name servers ignore, then renamed: a server never sees half a version.
        staging = os.path.join(config.serving_dir, f".rollback-{new_version}")
        shutil.copytree(source, staging)
        os.rename(staging, destination)
    if not model_config_path:
        if not rerun:
            _record(store, config, target, version, new_version, destination)
        return new_version

    # Listed by an earlier run (step 1 done): a re-run without a server may move the label.
    listed_before = rerun and (entry.model_version_policy.WhichOneof("policy_choice") != "specific"
                               or new_version in entry.model_version_policy.specific.versions)
    _list_version(model_config_path, config.pipeline_name, new_version)
    if not rerun:
        _record(store, config, target, version, new_version, destination)
    if server:
        loaded, said = _wait_until_available(server, config.pipeline_name, new_version, wait_seconds)
        if not loaded:
            raise RollbackPending(
                f"version {version} is copied as version {new_version} and listed in {model_config_path}, but "
                f"the server at {server} has not loaded it: {said}. The label {label!r} is not moved; run the "
                "same command again once the server reports it AVAILABLE", new_version)
    elif not listed_before:
        # TF Serving moves a label only onto a loaded version: the operator confirms the load by re-running.
        raise RollbackPending(
            f"version {version} is copied as version {new_version} and listed in {model_config_path}; the label "
            f"{label!r} is not moved yet, as TF Serving moves a label only onto a version it has loaded. Once "
            f"the server reports version {new_version} AVAILABLE (GET /v1/models/{config.pipeline_name}/versions/"
            f"{new_version}), run the same command again to move the label", new_version)
    move_label(model_config_path, config.pipeline_name, label, new_version)
    return new_version
