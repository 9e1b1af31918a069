"""Airflow DAG that monitors the served model and triggers the training DAG: `<pipeline_name>-monitor`.

The scheduled form of `taxi-pipeline monitor --trigger`. Each run (monitor_schedule, default
@hourly) joins the model server's request log with the late outcome files, computes live
quality with TFMA, writes the report and the Prometheus textfile and records the pass in
ML Metadata (task `monitor`). When the decision is "trigger", it starts a run of the training
DAG `<pipeline_name>` (taxi_tips_dag.py, in this folder) and notes that run's id on the pass,
so `taxi-pipeline runs` shows "monitor: trigger (...); triggered DAG run ... of taxi-tips".
"no trigger" and "held" (cooldown) skip the rest (build_monitor_dag in airflow_runner.py).

Settings come from the TOML file named by TAXI_PIPELINE_CONFIG, as for taxi_tips_dag.py, so
both DAGs read the same pipeline. Importing this file reads no data and loads no TensorFlow:
the tasks import what they need when they run.

One pass by hand, with the same environment the scheduler has (`airflow_environment` in
airflow_runner.py sets it up):

    airflow db migrate
    airflow dags reserialize          # the training DAG must be in Airflow's DB to be triggered
    airflow dags test taxi-tips-monitor
"""
import os

import tf_environment  # noqa: F401  (before anything imports TensorFlow)
from pipeline.config import load_config
from pipeline.runners.airflow_runner import CONFIG_ENV, build_monitor_dag

DAG = build_monitor_dag(load_config(os.environ.get(CONFIG_ENV)))
