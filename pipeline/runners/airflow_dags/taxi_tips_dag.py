"""Airflow DAG of the taxi-tip pipeline, built by TFX's AirflowDagRunner.

Point Airflow's dags_folder at this folder. The settings come from the TOML file named by
TAXI_PIPELINE_CONFIG (the same settings as `taxi-pipeline run --config`); without it,
the defaults. Importing this file lists the spans, fingerprints their files and builds
the DAG (pipeline/prepare.py); no data is read.
"""
import os

import tf_environment  # noqa: F401  (before anything imports TensorFlow)
from pipeline.config import load_config
from pipeline.runners.airflow_runner import CONFIG_ENV, build_dag

DAG = build_dag(load_config(os.environ.get(CONFIG_ENV)))
