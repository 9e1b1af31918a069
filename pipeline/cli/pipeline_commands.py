"""The CLI's pipeline commands: run (local or Airflow) and compile (Kubeflow)."""
from __future__ import annotations

import argparse
import sys

from pipeline.config import PipelineConfig


def add_commands(commands, add_config_options) -> None:
    run = commands.add_parser(
        "run", help="run the whole pipeline once",
        description="Run the pipeline once. --runner local (default) uses TFX's LocalDagRunner "
                    "and prints each component with its duration, the evaluation against the "
                    "thresholds, and the pushed model version (or why nothing was pushed). "
                    "--runner airflow runs the same pipeline as an Airflow DAG with "
                    "`airflow dags test`, with an Airflow home under <output_root>/airflow. "
                    "Unchanged inputs and code are served from TFX's cache either way.")
    run.add_argument("--runner", choices=("local", "airflow"), default="local")
    add_config_options(run)
    run.set_defaults(handler=_run)
    compile_ = commands.add_parser(
        "compile", help="compile the pipeline for an orchestrator",
        description="Write the pipeline definition for another orchestrator. --target kubeflow "
                    "writes a Kubeflow Pipelines v2 / Vertex AI pipeline spec (JSON) whose steps "
                    "run in kubeflow_image; set data_root and output_root to gs:// paths and "
                    "beam_profile to dataflow (or flink/spark) for a cluster.")
    compile_.add_argument("--target", choices=("kubeflow",), required=True)
    compile_.add_argument("--output", default="out/kubeflow/pipeline.json", help="where to write the spec")
    add_config_options(compile_)
    compile_.set_defaults(handler=_compile)


def _run(args: argparse.Namespace, config: PipelineConfig) -> int:
    try:
        if args.runner == "local":
            from pipeline.runners.local_runner import run_local
            return 0 if run_local(config).succeeded else 1
        from pipeline.runners.airflow_runner import run_with_airflow
        return run_with_airflow(config)
    except ValueError as error:  # what preparing the pipeline found wrong in the settings' paths
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2


def _compile(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline.runners.kubeflow import compile_kubeflow

    try:
        print(f"Kubeflow v2 pipeline spec written to {compile_kubeflow(config, args.output)}")
    except ValueError as error:
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2
    return 0
