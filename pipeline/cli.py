"""taxi-pipeline: the command line of the taxi-tip pipeline."""
from __future__ import annotations

import argparse
import sys

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from pipeline.config import PipelineConfig, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taxi-pipeline",
        description="Train, validate and push the taxi big-tip model with TFX.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the whole pipeline once",
        description="Run the pipeline on the local Beam runner with a SQLite ML Metadata store. "
                    "Prints each component with its duration, the evaluation against the "
                    "thresholds, and the pushed model version (or why nothing was pushed). "
                    "Unchanged inputs and code are served from TFX's cache.")
    run.add_argument("--config", help="TOML file with PipelineConfig settings")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one setting, e.g. --set train_steps=500 --set spans=latest. "
                          "Settings: " + ", ".join(PipelineConfig.__dataclass_fields__))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config, args.set)
    except (ValueError, OSError) as error:
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2
    if args.command == "run":
        from pipeline.local_runner import run_local
        result = run_local(config)
        return 0 if result.succeeded else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
