"""Write models.config for the real tensorflow_model_server from what the Pusher pushed.

    python -m serving.deploy.production_config --serving_dir out/serving/taxi-tips \\
        --base_path /models/taxi-tips > serving/deploy/models.config

The newest pushed version is labelled `stable`; with --canary, the newest is `canary` and
the one before it `stable`, and both are loaded (policy `specific`). base_path is where
the server sees the versions (inside the container), which may differ from serving_dir.

TF Serving lets a label name only a version it has loaded, so every labelled version is
listed in the `specific` policy; `taxi-pipeline rollback --model_config` keeps it so (it
lists the new version first and moves the label once the server has loaded it).
"""
from __future__ import annotations

import argparse
import sys

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.server.model_store import list_versions


def labels_not_listed(model: model_server_config_pb2.ModelConfig) -> dict[str, int]:
    """Labels naming a version a `specific` policy does not load: TF Serving refuses such a config."""
    if model.model_version_policy.WhichOneof("policy_choice") != "specific":
        return {}  # `latest` and `all` depend on what is on disk, not on the config
    listed = set(model.model_version_policy.specific.versions)
    return {label: version for label, version in sorted(model.version_labels.items()) if version not in listed}


def models_config(name: str, base_path: str, versions: list[int], canary: bool) -> str:
    if not versions:
        raise ValueError("no pushed versions: run the pipeline until a model is blessed and pushed")
    if canary and len(versions) < 2:
        raise ValueError("--canary needs two pushed versions (stable and canary)")
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
    labels = {"stable": versions[-2], "canary": versions[-1]} if canary else {"stable": versions[-1]}
    model.model_version_policy.specific.versions.extend(sorted(set(labels.values())))
    for label, version in labels.items():
        model.version_labels[label] = version
    assert not labels_not_listed(model)
    return text_format.MessageToString(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serving_dir", required=True, help="the Pusher's folder of versions")
    parser.add_argument("--base_path", help="the same folder as the server sees it (default: serving_dir)")
    parser.add_argument("--model_name", default="taxi-tips")
    parser.add_argument("--canary", action="store_true", help="label the newest version canary")
    args = parser.parse_args(argv)
    try:
        print(models_config(args.model_name, args.base_path or args.serving_dir,
                            list_versions(args.serving_dir), args.canary), end="")
    except ValueError as error:
        print(f"production_config: {args.serving_dir}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
