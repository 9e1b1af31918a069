"""TF Serving's model config (text ModelServerConfig): which models, where, which versions, which labels.

Labels follow TF Serving's rule (ServerCore::UpdateModelVersionLabelMap): a label may name
only a version that is AVAILABLE, else the reload fails with FAILED_PRECONDITION "Request
to assign label to version N of model M, which is not currently available for inference"
and the labels stay as they were. A label never points at a version that is not served,
so `stable` never turns into NOT_FOUND:

- a label on a version the config does not load (not listed by its `specific` policy, or
  not on disk) refuses the whole config before anything changes, as TF Serving does;
- otherwise the versions the config lists are loaded first (our server loads synchronously
  while it applies a config), then the labels move if their versions are AVAILABLE. If one
  is not (its load failed, or is still running), the labels and the versions they name
  stay, the new versions stay loaded, and the error is returned; the config file poller
  applies the file again at its next poll, so the move is held until the version loads.

tensorflow_model_server checks labels before it loads anything, so it refuses a config
that lists a new version and labels it at once; list it first, then move the label (as
`taxi-pipeline rollback` does).
"""
from __future__ import annotations

import dataclasses

import grpc
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.server.errors import ServingError, invalid
from serving.server.model_store import AVAILABLE, ModelStore, VersionPolicy, list_versions


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    base_path: str
    policy: VersionPolicy
    labels: dict[str, int]


def entries_from_proto(config: model_server_config_pb2.ModelServerConfig) -> list[ModelEntry]:
    if config.WhichOneof("config") != "model_config_list":
        raise invalid("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                      "Only ModelConfigList is currently supported")
    entries = []
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise invalid(f"model config {model.name or '(unnamed)'}: name and base_path are required")
        chosen = model.model_version_policy.WhichOneof("policy_choice")
        if chosen == "all":
            policy = VersionPolicy("all")
        elif chosen == "specific":
            policy = VersionPolicy("specific", versions=tuple(model.model_version_policy.specific.versions))
        elif chosen == "latest":
            policy = VersionPolicy("latest", count=model.model_version_policy.latest.num_versions or 1)
        else:
            policy = VersionPolicy()
        entries.append(ModelEntry(model.name, model.base_path, policy, dict(model.version_labels)))
    return entries


def read_model_config(path: str) -> list[ModelEntry]:
    try:
        text = open(path).read()
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as error:
        raise ValueError(f"{path}: not a text ModelServerConfig: {error}") from None
    return entries_from_proto(config)


def label_not_available(model: str, version: int) -> ServingError:
    """TF Serving's error for a label on a version that is not loaded (server_core.cc)."""
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {model}, "
                        "which is not currently available for inference")


def check_labels_loadable(entries: list[ModelEntry]) -> None:
    """Before a config changes anything: each label must name a version the config loads."""
    for entry in entries:
        loads = set(entry.policy.choose(list_versions(entry.base_path)))
        for _, version in sorted(entry.labels.items()):
            if version not in loads:
                raise label_not_available(entry.name, version)


def apply_entry(store: ModelStore, entry: ModelEntry) -> None:
    """Load what `entry` lists, then move its labels if their versions are AVAILABLE (see the module docstring)."""
    def available() -> set[int]:
        return {state.version for state in store.statuses_or_empty() if state.state == AVAILABLE}

    # First load without unloading: the versions the old labels name keep serving.
    keep = set(entry.policy.choose(list_versions(entry.base_path))) | available()
    store.configure(entry.base_path, VersionPolicy("specific", versions=tuple(sorted(keep))), store.labels)
    store.poll_once()
    loaded = available()
    for _, version in sorted(entry.labels.items()):
        if version not in loaded:
            raise label_not_available(entry.name, version)
    store.configure(entry.base_path, entry.policy, entry.labels)
    store.poll_once()  # now unload what the config no longer lists
