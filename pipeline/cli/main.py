"""taxi-pipeline: parse the command line, load the settings, call the command's handler."""
from __future__ import annotations

import argparse
import sys
import warnings

from pipeline.cli import (
    data_commands,
    governance_commands,
    monitor_commands,
    pipeline_commands,
    release_commands,
    reproduce_commands,
)
from pipeline.config import PipelineConfig, load_config

SETTINGS_HELP = "Settings: " + ", ".join(PipelineConfig.__dataclass_fields__)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config and --set; a command with them gets the loaded PipelineConfig."""
    parser.add_argument("--config", help="TOML file with pipeline settings (see pipeline/config.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set train_steps=500 --set spans=latest. " + SETTINGS_HELP)
    parser.set_defaults(needs_config=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taxi-pipeline",
        description="Train, validate and push the taxi big-tip model with TFX.")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (pipeline_commands, data_commands, governance_commands, reproduce_commands, monitor_commands,
                  release_commands):
        group.add_commands(commands, add_config_options)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Google Cloud client libraries (pulled in by TFX) warn about Python and grpcio
    # versions at import; nothing a user of this command can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\..*)?$")
    args = _parser().parse_args(argv)
    config = None
    if getattr(args, "needs_config", False):
        try:
            config = load_config(args.config, args.set)
        except (ValueError, OSError) as error:
            print(f"taxi-pipeline: {error}", file=sys.stderr)
            return 2
    try:
        return args.handler(args, config)
    except ConnectionError as error:  # the metadata store's server refused or is down: nothing to debug in a trace
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
