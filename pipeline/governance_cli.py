"""The CLI's governance commands: lineage, runs and rollback (see pipeline/cli.py)."""
from __future__ import annotations

import argparse
import os

from pipeline.config import PipelineConfig

COMMANDS = ("lineage", "runs", "rollback")


def add_commands(commands, add_config_options) -> None:
    lineage = commands.add_parser(
        "lineage", help="where a pushed model version came from",
        description="Print the chain from a pushed version back to what made it, read from ML Metadata: "
                    "the servability and Evaluator blessings, the evaluation, the model and the "
                    "hyperparameters it was trained with (tuned or defaults), the transform graph, the "
                    "schema, the statistics and the examples with the span folders they were read "
                    "from. A version made by `rollback` leads back through the rollback to the original.")
    lineage.add_argument("version", help="version number as in <output_root>/serving/<pipeline>/<version>")
    add_config_options(lineage)
    runs = commands.add_parser(
        "runs", help="list pipeline runs with outcome and duration",
        description="List every pipeline run recorded in ML Metadata, oldest first, with its start, "
                    "duration and outcome (pushed VERSION, not blessed, not servable, nothing new, "
                    "FAILED at COMPONENT), and every rollback.")
    add_config_options(runs)
    rollback = commands.add_parser(
        "rollback", help="serve an earlier pushed version again",
        description="Copy an earlier pushed (so blessed) version to a new, highest version number in "
                    "the serving folder, which both tensorflow_model_server and serving/server.py "
                    "then serve under their default `latest` policy; with --model_config, also move "
                    "a version label there. Recorded in ML Metadata: shown by `runs` and `lineage`. "
                    "The next pushed model replaces it as usual.")
    rollback.add_argument("--to", required=True, dest="to_version", help="the earlier version to serve")
    rollback.add_argument("--model_config", help="a models.config (text ModelServerConfig) whose label to move")
    rollback.add_argument("--label", default="stable", help="the version label to move (default: stable)")
    add_config_options(rollback)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline import lineage, metadata, rollback, runs

    if not os.path.exists(config.metadata_path):
        print(f"taxi-pipeline: no metadata store at {config.metadata_path}; run the pipeline first "
              "(or give the output_root it used with --set output_root=...)")
        return 2
    try:
        if args.command == "lineage":
            store = metadata.open_store(config.metadata_path)
            print(lineage.format_lineage(lineage.trace(store, args.version)))
        elif args.command == "runs":
            print(runs.format_runs(runs.list_runs(metadata.open_store(config.metadata_path), config.pipeline_name)))
        else:
            new_version = rollback.rollback(config, args.to_version, args.model_config, args.label)
            print(f"Rolled back: version {args.to_version} serves again as version {new_version} "
                  f"({config.serving_dir}/{new_version})"
                  + (f"; label {args.label!r} in {args.model_config} now points at it" if args.model_config else ""))
    except (lineage.LineageError, rollback.RollbackError) as error:
        print(f"taxi-pipeline {args.command}: {error}")
        return 2
    return 0
