"""taxi-pipeline: the command line of the taxi-tip pipeline."""
from __future__ import annotations

import argparse
import sys
import warnings

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from pipeline import synthetic
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
    synthetic.add_parser(commands)
    return parser


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
    if args.command == "run" and args.runner == "local":
        from pipeline.local_runner import run_local
        return 0 if run_local(config).succeeded else 1
    if args.command == "run":
        from pipeline.airflow_runner import run_with_airflow
        return run_with_airflow(config)
    from pipeline.kubeflow import compile_kubeflow
    print(f"Kubeflow v2 pipeline spec written to {compile_kubeflow(config, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
