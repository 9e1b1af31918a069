"""The Celery configuration of the deployment's workers: Airflow's default, plus a preload.

Every Airflow task parses the DAG file in a process forked from the worker, and parsing
the pipeline's DAG imports TFX, TensorFlow and Beam: 10-20 s of CPU per task, repeated for
each of the ~20 tasks of a run. Celery's `import_modules` signal (the hook Airflow's own
provider uses to preload its modules) fires once in the worker before its pool forks, so
importing them there makes every task start with them loaded.
"""
from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery import signals

CELERY_CONFIG = dict(DEFAULT_CELERY_CONFIG)


@signals.import_modules.connect
def _preload_pipeline(*args, **kwargs) -> None:
    import tf_environment  # noqa: F401, I001  (before TensorFlow)
    from tfx.orchestration.airflow import airflow_dag_runner  # noqa: F401
    from pipeline import pipeline, prepare  # noqa: F401
