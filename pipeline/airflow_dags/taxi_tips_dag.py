"""Airflow DAG of the taxi-tip pipeline, built by TFX's AirflowDagRunner.

Point Airflow's dags_folder at this folder. The settings come from the TOML file named by
TAXI_PIPELINE_CONFIG (the same settings as `taxi-pipeline run --config`); without it,
the defaults. Importing this file only builds the DAG: no data is read.
"""
import os

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from pipeline.airflow_runner import CONFIG_ENV, build_dag
from pipeline.config import load_config

DAG = build_dag(load_config(os.environ.get(CONFIG_ENV)))
