"""Airflow DAG that walks a canary to promotion or abort: `<pipeline_name>-release`.

The Airflow form of `taxi-pipeline release` (build_release_dag in pipeline/runners/release_dag.py):
trigger it once the new version has the canary label, e.g.

    airflow dags trigger taxi-tips-release

Settings (release_server, release_model_config, release_routing_file, release_steps, the
thresholds) come from the TOML file named by TAXI_PIPELINE_CONFIG, as for the other DAGs.
Importing this file loads no TensorFlow.
"""
import os

from pipeline.config import load_config
from pipeline.runners.airflow_runner import CONFIG_ENV
from pipeline.runners.release_dag import build_release_dag

DAG = build_release_dag(load_config(os.environ.get(CONFIG_ENV)))
