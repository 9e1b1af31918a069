"""The CLI's reproducibility commands: compare two runs, reproduce a pushed version."""
from __future__ import annotations

import argparse
import pathlib
import tempfile

from pipeline.config import PipelineConfig

# The default of `reproduce --tolerance`, spelled here too so `--help` imports no ML Metadata;
# pipeline/governance/reproduce.py's DEFAULT_TOLERANCE is the same number (a unit test checks).
DEFAULT_TOLERANCE = 1e-6


def add_commands(commands, add_config_options) -> None:
    compare = commands.add_parser(
        "compare", help="two runs side by side: hyperparameters, data, code, environment, metrics",
        description="Print what two runs recorded in ML Metadata side by side, marking every line that "
                    "differs: the hyperparameters Trainer used, the spans and the sha256 of each file read, "
                    "the git commit and whether the tree was dirty, the models/ fingerprint and seed, the "
                    "requirements.lock hash, Python and library versions, the settings that differ, and the "
                    "evaluation's metrics. Name a run by its id (as `taxi-pipeline runs` lists it) or by the "
                    "version it pushed.")
    compare.add_argument("first", help="run id or pushed version")
    compare.add_argument("second", help="run id or pushed version")
    add_config_options(compare)
    compare.set_defaults(handler=_compare)
    reproduce = commands.add_parser(
        "reproduce", help="re-run a pushed version's recorded inputs and check its metrics",
        description="Train a pushed version again from what its run recorded (settings, the hyperparameters "
                    "Trainer used, exactly the span files it read, checked by their sha256) into an output root "
                    "of its own (--output, or a temporary folder removed afterwards), then print the recorded "
                    "and the new metrics side by side with the tolerance. Exit 0 when every metric agrees "
                    "within it, 1 when one does not or the re-run fails, 2 when the version cannot be re-run "
                    "as recorded (unknown, no record, its data changed). Warns when the checkout's commit, "
                    "models/, requirements.lock or a library version differs from the recorded one.")
    reproduce.add_argument("version", help="version number as in <output_root>/serving/<pipeline>/<version>")
    reproduce.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                           help=f"largest absolute difference allowed on each metric (default {DEFAULT_TOLERANCE:g})")
    reproduce.add_argument("--output", help="empty or new folder to keep the re-run in (default: a temporary one)")
    add_config_options(reproduce)
    reproduce.set_defaults(handler=_reproduce)


def _store_or_say(config: PipelineConfig) -> bool:
    from pipeline import metadata

    if metadata.store_exists(config.metadata_path):
        return True
    print(f"taxi-pipeline: no metadata store at {config.metadata_path}; run the pipeline first "
          "(or give the output_root it used with --set output_root=...)")
    return False


def _compare(args: argparse.Namespace, config: PipelineConfig) -> int:
    if not _store_or_say(config):
        return 2
    from pipeline import metadata
    from pipeline.governance import compare, lineage

    try:
        print(compare.compare(metadata.open_store(config.metadata_path), config.pipeline_name,
                              args.first, args.second))
    except (compare.CompareError, lineage.LineageError) as error:
        print(f"taxi-pipeline compare: {error}")
        return 2
    return 0


def _reproduce(args: argparse.Namespace, config: PipelineConfig) -> int:
    if not _store_or_say(config):
        return 2
    if args.output:
        work_dir = pathlib.Path(args.output).resolve()
        if work_dir.exists() and any(work_dir.iterdir()):
            print(f"taxi-pipeline reproduce: --output {work_dir} is not empty; give a new or empty folder")
            return 2
        work_dir.mkdir(parents=True, exist_ok=True)
        return _reproduce_into(args, config, work_dir)
    with tempfile.TemporaryDirectory(prefix="taxi-reproduce-") as folder:
        return _reproduce_into(args, config, pathlib.Path(folder))


def _reproduce_into(args: argparse.Namespace, config: PipelineConfig, work_dir: pathlib.Path) -> int:
    from pipeline.governance import compare, lineage, reproduce

    try:
        agree = reproduce.reproduce(config, args.version, work_dir, args.tolerance)
    except (reproduce.ReproduceError, compare.CompareError, lineage.LineageError) as error:
        print(f"taxi-pipeline reproduce: {error}")
        return 2
    except reproduce.RerunFailed as error:
        print(f"taxi-pipeline reproduce: {error}")
        return 1
    return 0 if agree else 1
