"""`taxi-pipeline release` as an Airflow DAG: `<pipeline_name>-release`, one task, `release`.

Triggered (not scheduled) once a new version is labelled canary, e.g. `airflow dags trigger
taxi-tips-release`. The task walks the canary through release_steps as the CLI does and
ends the way an operator reads at a glance:

- promoted: the task succeeds;
- aborted: the task fails at once, without retries (traffic is already back on stable; the
  Prometheus rule on taxi_release_aborted fires too);
- held (too few requests within release_step_minutes): the task fails and Airflow retries it
  after release_step_minutes, up to RETRIES times; each retry resumes at the held step.

Building it imports only Airflow: the task imports the release code when it runs.
"""
from __future__ import annotations

import datetime
import functools

from pipeline.config import PipelineConfig
from pipeline.runners.airflow_runner import START_DATE

RELEASE_TASK = "release"
RETRIES = 6


def build_release_dag(config: PipelineConfig):
    from airflow.models.dag import DAG
    from airflow.operators.python import PythonOperator

    with DAG(
        dag_id=f"{config.pipeline_name}-release",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # two releases would fight over one routing file
        tags=["release"],
    ) as dag:
        PythonOperator(task_id=RELEASE_TASK, python_callable=functools.partial(_release_task, config),
                       retries=RETRIES, retry_delay=datetime.timedelta(minutes=config.release_step_minutes))
    return dag


def _release_task(config: PipelineConfig) -> dict:
    import logging

    from airflow.exceptions import AirflowException, AirflowFailException

    import tf_environment  # noqa: F401  (before the release's imports load TensorFlow)
    from pipeline.release.release import Settings, run_release
    from pipeline.release.release_record import ABORT, HOLD

    log = logging.getLogger("airflow.task")
    result = run_release(config, Settings.from_config(config), say=lambda line: log.info("%s", line))
    summary = {"verdict": result.verdict, "canary_version": result.canary_version,
               "stable_version": result.stable_version,
               "steps": [{"weight": s.weight, "verdict": s.verdict, "reason": s.reason} for s in result.steps]}
    if result.verdict == ABORT:
        raise AirflowFailException(f"release of version {result.canary_version} aborted: {result.steps[-1].reason}")
    if result.verdict == HOLD:
        raise AirflowException(f"release of version {result.canary_version} held; the retry resumes it")
    return summary
