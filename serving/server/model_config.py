"""TF Serving's model config (text ModelServerConfig): which models, where, which versions."""
from __future__ import annotations

import dataclasses

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.server.errors import invalid
from serving.server.model_store import VersionPolicy


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
