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
                    "--runner airflow runs the same pipeline as an Airflow DAG: with "
                    "--airflow-mode test (default) in this process with `airflow dags test` and an "
                    "Airflow home under <output_root>/airflow; with --airflow-mode scheduler it triggers "
                    "the DAG on the running deployment AIRFLOW_HOME names (its scheduler and workers run "
                    "the tasks, with the settings of its TAXI_PIPELINE_CONFIG) and follows the run to "
                    "its end. Unchanged inputs and code are served from TFX's cache either way; locally, a run "
                    "with nothing changed since the last finished one stops at once and says so.")
    run.add_argument("--runner", choices=("local", "airflow"), default="local")
    run.add_argument("--airflow-mode", choices=("test", "scheduler"), default="test",
                     help="test: `airflow dags test` here; scheduler: trigger and follow on a deployment")
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
            if _nothing_changed(config):
                return 0
            from pipeline.runners.local_runner import run_local
            return 0 if run_local(config).succeeded else 1
        if args.airflow_mode == "scheduler":
            return _run_on_deployment(args, config)
        from pipeline.runners.airflow_runner import run_with_airflow
        return run_with_airflow(config)
    except ValueError as error:  # what preparing the pipeline found wrong in the settings' paths
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2


def _nothing_changed(config: PipelineConfig) -> bool:
    """Says so and returns True when a run would come wholly from the cache (runners/up_to_date.py):
    checked before TensorFlow and TFX are imported, so such a rerun answers in about a second."""
    from pipeline.monitoring import pipeline_status
    from pipeline.runners import up_to_date

    try:
        last = up_to_date.unchanged_since(config)
        if last is None:
            return False
        up_to_date.confirm(config, last)
    except Exception:  # noqa: BLE001  (a check that cannot answer is no reason not to run: the run reports)
        return False
    warning = pipeline_status.write_status_safely(config, run_ended=True)
    if warning:
        print(f"Warning: {warning}")
    print(f"Nothing changed since run {last.run_id} (finished {last.finished}): the same code, settings, "
          "libraries and data, so every component would come from the cache. "
          + (f"It pushed {last.pushed}." if last.pushed else "It pushed nothing.")
          + " To run anyway: --set enable_cache=false.")
    return True


def _run_on_deployment(args: argparse.Namespace, config: PipelineConfig) -> int:
    import os

    from pipeline.config import load_config
    from pipeline.runners.airflow_deployment import run_on_deployment
    from pipeline.runners.airflow_runner import CONFIG_ENV

    # The deployment's tasks read their settings from its own file: settings given here would
    # not reach them, so this process reads the same file (to find ML Metadata) and takes no --set.
    if args.set:
        print(f"taxi-pipeline: --set does not reach a deployment's tasks; edit the file {CONFIG_ENV} names "
              "(the DAG is re-read by each task)", file=sys.stderr)
        return 2
    if args.config is None and os.environ.get(CONFIG_ENV):
        config = load_config(os.environ[CONFIG_ENV])
    return run_on_deployment(config)


def _compile(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline.runners.kubeflow import compile_kubeflow

    try:
        print(f"Kubeflow v2 pipeline spec written to {compile_kubeflow(config, args.output)}")
    except ValueError as error:
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2
    return 0
