"""The CLI's governance commands: runs, lineage, rollback, card and predict, all read ML Metadata."""
from __future__ import annotations

import argparse
import os

from pipeline.config import PipelineConfig


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
    lineage.set_defaults(handler=_lineage)
    runs = commands.add_parser(
        "runs", help="list pipeline runs with outcome and duration",
        description="List every pipeline run recorded in ML Metadata, oldest first, with its start, "
                    "duration and outcome (pushed VERSION, not blessed, not servable, nothing new, "
                    "FAILED at COMPONENT), and every rollback.")
    add_config_options(runs)
    runs.set_defaults(handler=_runs)
    rollback = commands.add_parser(
        "rollback", help="serve an earlier pushed version again",
        description="Copy an earlier pushed (so blessed) version to a new, highest version number in "
                    "the serving folder, which both tensorflow_model_server and serving/server/ "
                    "then serve under their default `latest` policy. With --model_config, the copy is "
                    "also listed in that models.config and the version label moves to it once the "
                    "server has loaded it (TF Serving moves labels only onto loaded versions): with "
                    "--server the command waits for the load; without it, it stops after listing the "
                    "copy (exit 2) and the same command, run again once the copy is loaded, moves the "
                    "label. Recorded in ML Metadata: shown by `runs` and `lineage`. The next pushed "
                    "model replaces it as usual.")
    rollback.add_argument("--to", required=True, dest="to_version", help="the earlier version to serve")
    rollback.add_argument("--model_config", help="a models.config (text ModelServerConfig) whose label to move")
    rollback.add_argument("--label", default="stable", help="the version label to move (default: stable)")
    rollback.add_argument("--server", help="the model server polling --model_config, REST http://HOST:8501 or "
                                           "gRPC HOST:8500: wait until it has loaded the copy, then move the label")
    add_config_options(rollback)
    rollback.set_defaults(handler=_rollback)
    card = commands.add_parser(
        "card", help="write the model card and evaluation report of a pushed version",
        description="Write <output_root>/model_cards/<version>/model_card.md and .html (data spans and "
                    "statistics, schema, hyperparameters, the blessing decision against the thresholds it was "
                    "evaluated with, metrics overall and per slice against the baseline, known limitations) and "
                    "evaluation_report.html (AUC by slice and calibration, as inline SVG). A local run writes "
                    "them for each new push.")
    predict = commands.add_parser(
        "predict", help="score a span of unlabelled trips with a pushed model (Beam)",
        description="Run a Beam job (the beam_profile's runner) that scores every row of the CSV files "
                    "--input matches with a pushed version (the newest unless --version) through Beam's "
                    "RunInference, and writes each input row with its tip_probability appended to --output.")
    predict.add_argument("--input", required=True, help="CSV file or pattern, e.g. data/taxi/span-4/*.csv")
    predict.add_argument("--output", required=True, help="CSV file to write")
    predict.add_argument("--version", help="pushed version to use (default: the newest)")
    add_config_options(predict)
    predict.set_defaults(handler=_predict)
    card.add_argument("version", help="version number as in <output_root>/serving/<pipeline>/<version>")
    add_config_options(card)
    card.set_defaults(handler=_card)


def _needs_store(handler):
    """Every governance command reads ML Metadata: say so plainly when there is none yet."""
    def checked(args: argparse.Namespace, config: PipelineConfig) -> int:
        from pipeline import metadata

        if not metadata.store_exists(config.metadata_path):
            print(f"taxi-pipeline: no metadata store at {config.metadata_path}; run the pipeline first "
                  "(or give the output_root it used with --set output_root=...)")
            return 2
        return handler(args, config)
    return checked


@_needs_store
def _lineage(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline import metadata
    from pipeline.governance import lineage

    try:
        print(lineage.format_lineage(lineage.trace(metadata.open_store(config.metadata_path), args.version)))
    except lineage.LineageError as error:
        print(f"taxi-pipeline lineage: {error}")
        return 2
    return 0


@_needs_store
def _runs(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline import metadata
    from pipeline.governance import runs

    print(runs.format_runs(runs.list_runs(metadata.open_store(config.metadata_path), config.pipeline_name)))
    return 0


@_needs_store
def _card(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline.governance import lineage, model_card

    try:
        for path in model_card.write(config, args.version):
            print(path)
    except lineage.LineageError as error:
        print(f"taxi-pipeline card: {error}")
        return 2
    return 0


@_needs_store
def _rollback(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline.governance import lineage, rollback

    try:
        new_version = rollback.rollback(config, args.to_version, args.model_config, args.label, server=args.server)
    except (lineage.LineageError, rollback.RollbackError) as error:
        print(f"taxi-pipeline rollback: {error}")
        return 2
    print(f"Rolled back: version {args.to_version} serves again as version {new_version} "
          f"({config.serving_dir}/{new_version})"
          + (f"; label {args.label!r} in {args.model_config} now points at it" if args.model_config else ""))
    return 0


@_needs_store
def _predict(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline.config import beam_pipeline_args
    from pipeline.governance.batch_predict import predict_csv
    from serving.server.model_store import list_versions

    versions = list_versions(config.serving_dir)
    version = int(args.version) if args.version else (versions[-1] if versions else None)
    if version is None or version not in versions:
        print(f"taxi-pipeline predict: no version {args.version or ''} in {config.serving_dir}; "
              f"pushed: {', '.join(map(str, versions)) or 'none'}")
        return 2
    try:
        count = predict_csv(os.path.join(config.serving_dir, str(version)), args.input, args.output,
                            beam_pipeline_args(config))
    except ValueError as error:
        print(f"taxi-pipeline predict: {error}")
        return 2
    print(f"Scored {count} rows with version {version}: {args.output}")
    return 0
