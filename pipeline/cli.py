"""taxi-pipeline: the command line of the taxi-tip pipeline."""
from __future__ import annotations

import argparse
import sys
import warnings

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from pipeline import governance_cli, synthetic
from pipeline.config import PipelineConfig, load_config

SETTINGS_HELP = "Settings: " + ", ".join(PipelineConfig.__dataclass_fields__)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file with pipeline settings (see pipeline/config.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set train_steps=500 --set spans=latest. " + SETTINGS_HELP)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taxi-pipeline",
        description="Train, validate and push the taxi big-tip model with TFX.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the whole pipeline once",
        description="Run the pipeline once. --runner local (default) uses TFX's LocalDagRunner "
                    "and prints each component with its duration, the evaluation against the "
                    "thresholds, and the pushed model version (or why nothing was pushed). "
                    "--runner airflow runs the same pipeline as an Airflow DAG with "
                    "`airflow dags test`, with an Airflow home under <output_root>/airflow. "
                    "Unchanged inputs and code are served from TFX's cache either way.")
    run.add_argument("--runner", choices=("local", "airflow"), default="local")
    _add_config_options(run)
    compile_ = commands.add_parser(
        "compile", help="compile the pipeline for an orchestrator",
        description="Write the pipeline definition for another orchestrator. --target kubeflow "
                    "writes a Kubeflow Pipelines v2 / Vertex AI pipeline spec (JSON) whose steps "
                    "run in kubeflow_image; set data_root and output_root to gs:// paths and "
                    "beam_profile to dataflow (or flink/spark) for a cluster.")
    compile_.add_argument("--target", choices=("kubeflow",), required=True)
    compile_.add_argument("--output", default="out/kubeflow/pipeline.json", help="where to write the spec")
    _add_config_options(compile_)
    schema_diff = commands.add_parser(
        "schema-diff", help="show how a span's data differs from the curated schema",
        description="Infer a schema from one span's CSV files (types from the data itself) and print "
                    "how it differs from schema_path: features added or gone, types, required features "
                    "with missing values, values outside a curated domain. Review the lines, then accept "
                    "a change by editing schema/schema.pbtxt (see schema/README.md). Exit status 1 when "
                    "there are differences.")
    schema_diff.add_argument("--span", type=int, help="span number (default: the newest span in data_root)")
    _add_config_options(schema_diff)
    governance_cli.add_commands(commands, _add_config_options)
    synthetic.add_parser(commands)
    return parser


def _schema_diff(config: PipelineConfig, span: int | None) -> int:
    from pipeline.csv_check import CsvError
    from pipeline.schema_diff import diff_span
    from pipeline.span_statistics import load_schema
    from pipeline.spans import list_spans

    try:
        span = span if span is not None else list_spans(config.data_root)[-1]
        changes = diff_span(config.data_root, span, load_schema(config.schema_path))
    except (CsvError, ValueError) as error:
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2
    if not changes:
        print(f"span {span} matches {config.schema_path}: no differences.")
        return 0
    print(f"span {span} differs from {config.schema_path}:\n  " + "\n  ".join(changes))
    return 1


def main(argv: list[str] | None = None) -> int:
    # Google Cloud client libraries (pulled in by TFX) warn about Python and grpcio
    # versions at import; nothing a user of this command can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\..*)?$")
    args = _parser().parse_args(argv)
    if args.command == "generate":
        return synthetic.run(args)
    try:
        config = load_config(args.config, args.set)
    except (ValueError, OSError) as error:
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2
    if args.command == "schema-diff":
        return _schema_diff(config, args.span)
    if args.command in governance_cli.COMMANDS:
        return governance_cli.run(args, config)
    try:
        if args.command == "run" and args.runner == "local":
            from pipeline.local_runner import run_local
            return 0 if run_local(config).succeeded else 1
        if args.command == "run":
            from pipeline.airflow_runner import run_with_airflow
            return run_with_airflow(config)
        from pipeline.kubeflow import compile_kubeflow
        print(f"Kubeflow v2 pipeline spec written to {compile_kubeflow(config, args.output)}")
        return 0
    except ValueError as error:  # what building the pipeline found wrong in the settings' paths
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
