"""`run --runner airflow --airflow-mode scheduler`: one DAG run on a running Airflow deployment, followed.

It starts nothing: the deployment's scheduler and workers (the local one from
pipeline/deployment/local_stack.py, or a team's own) run the tasks. This process triggers a DAG
run through Airflow's own API against the deployment's database (AIRFLOW_HOME names the
deployment), then reads the run's task instances every few seconds and prints the same lines
as the `dags test` mode: one per finished task, then the evaluation and the pushed version
from ML Metadata, or the gate's findings from the failed task's log. Ctrl-C stops following;
the run goes on on the deployment.
"""
from __future__ import annotations

import datetime
import logging
import os
import sys
import time

from pipeline.config import PipelineConfig
from pipeline.runners.airflow_runner import gate_findings

# The outcomes `dags test` mode prints too (tasks that never ran are left out, as there).
FINISHED_TASK_STATES = ("success", "failed", "up_for_retry")
POLL_SECONDS = 2.0
# A run whose first task has not started after this long waits for a worker: say so once.
QUEUED_NOTICE_SECONDS = 120


class DeploymentError(ValueError):
    """The deployment is not there or cannot take the run; the message says what to do."""


def run_on_deployment(config: PipelineConfig, out=sys.stdout, poll_seconds: float = POLL_SECONDS) -> int:
    """Trigger the pipeline's DAG on the deployment at AIRFLOW_HOME and follow it; 0 when the run succeeded."""
    home = os.environ.get("AIRFLOW_HOME")
    if not home or not os.path.exists(os.path.join(home, "airflow.cfg")):
        raise DeploymentError("--airflow-mode scheduler runs on a deployment: set AIRFLOW_HOME to its Airflow home "
                              "(for the local one, `. out/stack/stack.env` after "
                              "`python -m pipeline.deployment.local_stack start`)")
    # Airflow's console logging is for its own processes; this one prints the run's lines only.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    from sqlalchemy.exc import OperationalError

    try:
        return _trigger_and_follow(config, home, say, poll_seconds)
    except OperationalError as error:  # the deployment's database: down, or not where airflow.cfg says
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error).splitlines()[0]
        raise DeploymentError(f"cannot reach the Airflow database of the deployment at {home}: {reason}. Is it running "
                              f"(for the local one: `python -m pipeline.deployment.local_stack status`)? A run "
                              f"already triggered goes on there.") from None


def _trigger_and_follow(config: PipelineConfig, home: str, say, poll_seconds: float) -> int:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dag import DagModel

    dag_id = config.pipeline_name
    dag_model = DagModel.get_dagmodel(dag_id)
    if dag_model is None:
        raise DeploymentError(f"DAG {dag_id} is not on the deployment at {home}: is its scheduler running, and does "
                              f"`airflow dags list-import-errors` show the DAG file failing?")
    if dag_model.is_paused:
        raise DeploymentError(f"DAG {dag_id} is paused on the deployment at {home}: `airflow dags unpause {dag_id}`")
    run_id = "taxi-pipeline__" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    trigger_dag(dag_id, run_id=run_id, conf={"triggered_by": "taxi-pipeline run"}, replace_microseconds=False)
    say(f"triggered DAG run {run_id} of {dag_id} on the deployment at {home}")
    try:
        state, failed = _follow(dag_id, run_id, say, poll_seconds)
    except KeyboardInterrupt:
        say(f"stopped following; DAG run {run_id} goes on (`airflow dags state {dag_id} {run_id}`)")
        return 130
    if state == "success":
        from pipeline import metadata
        from pipeline.evaluation import outcome

        runs = metadata.run_ids(metadata.open_store(config.metadata_path), dag_id)
        # Reading the evaluation, TFMA logs a deprecation of TensorFlow's own; nothing to act on.
        tensorflow_log = logging.getLogger("tensorflow")
        level, tensorflow_log.level = tensorflow_log.level, logging.ERROR
        try:
            say(outcome.describe(config, next((r for r in runs if r.endswith(run_id)), runs[-1])).text)
        finally:
            tensorflow_log.setLevel(level)
    else:
        for ti in failed:
            findings = gate_findings(_task_log(ti))
            if findings:
                say("\n".join(findings))
                break
    say(f"DAG run {state}; task logs under {os.path.join(home, 'logs', f'dag_id={dag_id}', f'run_id={run_id}')}")
    return 0 if state == "success" else 1


def _follow(dag_id: str, run_id: str, say, poll_seconds: float):
    """Poll the run until it ends; returns (state, the failed task instances)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    printed: set[tuple[str, int, str]] = set()
    started = time.monotonic()
    noticed_queue = False
    while True:
        with create_session() as session:
            run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one()
            instances = sorted(run.get_task_instances(session=session),
                               key=lambda ti: (ti.end_date or datetime.datetime.max.replace(tzinfo=datetime.UTC)))
            for ti in instances:
                state = str(ti.state or "")
                key = (ti.task_id, ti.try_number, state)
                if state in FINISHED_TASK_STATES and key not in printed:
                    printed.add(key)
                    took = f" in {ti.duration:.1f} s" if ti.duration else ""
                    say(f"task {ti.task_id}: {state.upper()}{took}")
            run_state = str(run.state)
            failed = [ti for ti in instances if str(ti.state) == "failed"]
            session.expunge_all()
        if run_state in ("success", "failed"):
            return run_state, failed
        if not noticed_queue and time.monotonic() - started > QUEUED_NOTICE_SECONDS and \
                not any(ti.start_date for ti in instances):
            noticed_queue = True
            say(f"no task has started after {QUEUED_NOTICE_SECONDS} s: the run waits for a worker or for the "
                f"run before it (one run at a time); `airflow celery` workers and the scheduler must be running")
        time.sleep(poll_seconds)


def _task_log(ti) -> str:
    """The failed task's last try's log text, as the deployment's log handler reads it."""
    from airflow.utils.log.log_reader import TaskLogReader

    try:
        chunks, _ = TaskLogReader().read_log_chunks(ti, ti.try_number, {"download_logs": True})
    except Exception as error:  # a log we cannot read only costs the findings, not the run's outcome
        return f"(log not readable: {error})"
    texts = []
    for chunk in chunks:
        for part in chunk if isinstance(chunk, list) else [chunk]:
            texts.append(part[1] if isinstance(part, tuple) else str(part))
    return "\n".join(texts)
