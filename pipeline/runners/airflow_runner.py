"""The pipeline as an Airflow DAG (TFX's AirflowDagRunner; Airflow 2.x, TFX needs < 3).

`build_dag` is what the DAG file calls; `build_monitor_dag` builds the monitoring DAG that
triggers it (airflow_dags/taxi_tips_monitor_dag.py); `run_with_airflow` runs the DAG once with the
real Airflow (`airflow dags test`) against a local Airflow home, for `run --runner airflow`.
"""
from __future__ import annotations

import datetime
import functools
import os
import pathlib
import subprocess
import sys

from pipeline.artifacts import CSV_CHECK, TRAINER
from pipeline.config import PipelineConfig, to_toml

DAGS_FOLDER = pathlib.Path(__file__).resolve().parent / "airflow_dags"
CONFIG_ENV = "TAXI_PIPELINE_CONFIG"
# A fixed start in the past: with catchup off, Airflow schedules only the next interval.
START_DATE = datetime.datetime(2026, 1, 1)


def build_dag(config: PipelineConfig):
    """An Airflow DAG named after the pipeline, one task per component."""
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    from pipeline.pipeline import create_pipeline
    from pipeline.prepare import prepare

    inputs = prepare(config)
    # When a DAG run ends, either way: its outcome into <output_root>/monitoring/pipeline.prom (and its
    # provenance completed, for a run that stopped before Trainer). DAG-level callbacks, not a task: a
    # task after the last one would decide the DAG run's state instead of the pipeline's tasks.
    ended = _RunEnded(config, inputs)
    dag_config = {
        "schedule": config.airflow_schedule or None,
        "start_date": START_DATE,
        "catchup": False,
        # One run at a time: runs share the MLMD store and the serving folder.
        "max_active_runs": 1,
        "on_success_callback": ended,
        "on_failure_callback": ended,
    }
    runner = AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=dag_config))
    dag = runner.run(create_pipeline(config, inputs))
    # The run's provenance on its run context in ML Metadata, written by the tasks that know it, in their
    # own process, in every mode (the `airflow dags test` process; a deployment's Celery worker, where
    # `taxi-pipeline run --airflow-mode scheduler` only triggers and follows): CsvCheck's task, when it has
    # checked the files, records commit, lock, versions and the sha256 of each span file (its process built
    # CsvCheck from this very parse of the DAG file, so these are the files it checked); Trainer's task adds
    # what it trained with. Not the DAG-level callback alone: on a deployment the scheduler's DAG processor
    # runs it, a while after the run and from a new parse that may already see the next span. Success
    # callbacks, not tasks: a record that fails is a logged warning, never a failed run.
    dag.get_task(CSV_CHECK).on_success_callback = _RunStarted(config, inputs)
    dag.get_task(TRAINER).on_success_callback = _Trained(config, inputs)
    return dag


def run_context_name(pipeline_name: str, dag_run_id: str) -> str:
    """The name of a DAG run's run context in ML Metadata, as TFX's Airflow launcher registers it
    (PipelineInfo.pipeline_run_context_name); `taxi-pipeline runs` lists the run by it."""
    return f"{pipeline_name}.{dag_run_id}"


class _Callback:
    """A callback of the training DAG (a class for its short repr: Airflow logs the callable it calls)."""

    def __init__(self, config: PipelineConfig, inputs) -> None:
        self.config, self.inputs = config, inputs

    def _record(self, write_name: str, context, log_name: str) -> None:
        """provenance.<write_name> for the context's DAG run, never raising; what it says goes to the log."""
        import io
        import logging

        from pipeline.governance import provenance

        out = io.StringIO()
        try:
            run_id = run_context_name(self.config.pipeline_name, context["dag_run"].run_id)
        except Exception as error:  # a callback context without its DAG run: nothing to record on
            print(f"Warning: {provenance.NOT_RECORDED}: no DAG run in the callback's context ({error})", file=out)
        else:
            provenance.recorded_safely(getattr(provenance, write_name), self.config, self.inputs, run_id, out)
        log = logging.getLogger(log_name)
        for line in out.getvalue().splitlines():
            log.warning("%s", line)


class _RunStarted(_Callback):
    def __call__(self, context) -> None:
        # In the task's process: its own logger writes into the task's log.
        self._record("record_at_start", context, "airflow.task")

    def __repr__(self) -> str:
        return f"provenance of a {self.config.pipeline_name} DAG run as it starts"


class _Trained(_Callback):
    def __call__(self, context) -> None:
        self._record("complete_record", context, "airflow.task")

    def __repr__(self) -> str:
        return f"provenance of a {self.config.pipeline_name} DAG run: what Trainer trained with"


class _RunEnded(_Callback):
    def __call__(self, context) -> None:
        from pipeline.monitoring.pipeline_status import write_status_safely

        # The outcome is read from ML Metadata, as every writer of the file does.
        write_status_safely(self.config, run_ended=True)  # logs a warning on failure; never raises
        # The record as CsvCheck and Trainer left it; one taken now (checked) when the run stopped before.
        self._record("complete_record", context, __name__)

    def __repr__(self) -> str:
        return f"end of a {self.config.pipeline_name} DAG run: pipeline status and provenance"


# Task ids of the monitoring DAG; the record step reads the others' XComs by these.
MONITOR_TASK, DECIDE_TASK, TRIGGER_TASK, RECORD_TASK = "monitor", "decide", "start_training", "record_trigger"


def build_monitor_dag(config: PipelineConfig):
    """The monitoring DAG `<pipeline_name>-monitor`: one `taxi-pipeline monitor --trigger` pass per
    monitor_schedule, where the run it starts is a run of the training DAG (`build_dag`).

        monitor -> decide -> start_training -> record_trigger

    monitor: run_monitor(config) (report, Prometheus textfile, the pass in ML Metadata); its
      XCom is {verdict, reasons, execution_id}.
    decide: short-circuits (skips the rest) unless the verdict is "trigger"; "held" (cooldown)
      and "no trigger" end the DAG run successfully.
    start_training: a DAG run of the training DAG with conf {reason, monitor_execution}; it
      does not wait for it. The training DAG's max_active_runs=1 queues it behind a running one.
    record_trigger: notes the triggered run id on the pass (`taxi-pipeline runs` shows it). When
      start_training fails, its failure callback notes "not started: ..." instead.

    Building it imports only Airflow: TensorFlow, TFMA and ML Metadata are imported by the
    tasks when they run, so the DAG file parses well within Airflow's parse timeout.
    """
    from airflow.models.dag import DAG
    from airflow.operators.python import PythonOperator, ShortCircuitOperator
    from airflow.operators.trigger_dagrun import TriggerDagRunOperator

    with DAG(
        dag_id=f"{config.pipeline_name}-monitor",
        schedule=config.monitor_schedule or None,
        start_date=START_DATE,
        catchup=False,
        # Passes write the same MLMD store and the trigger cooldown reads the previous pass.
        max_active_runs=1,
        tags=["monitoring"],
    ) as dag:
        monitor = PythonOperator(task_id=MONITOR_TASK, python_callable=functools.partial(_monitor_task, config))
        decide = ShortCircuitOperator(task_id=DECIDE_TASK, python_callable=_should_trigger,
                                      op_args=[monitor.output])
        start_training = TriggerDagRunOperator(
            task_id=TRIGGER_TASK,
            trigger_dag_id=config.pipeline_name,
            # conf is templated (rendered as text): the reasons and the pass's MLMD execution id
            # come from this DAG run's monitor XCom.
            conf={"reason": "{{ ti.xcom_pull(task_ids='%s')['reasons'] | join('; ') }}" % MONITOR_TASK,
                  "monitor_execution": "{{ ti.xcom_pull(task_ids='%s')['execution_id'] }}" % MONITOR_TASK},
            wait_for_completion=False,
            # A callback, not a task with trigger rule all_done: that would also run (and decide the
            # DAG run's state) when monitor itself failed.
            on_failure_callback=functools.partial(_note_not_started, config),
        )
        record = PythonOperator(task_id=RECORD_TASK, python_callable=functools.partial(_record_trigger_task, config))
        monitor >> decide >> start_training >> record
    return dag


def _monitor_task(config: PipelineConfig) -> dict:
    import logging

    import tf_environment  # noqa: F401  (before run_monitor's imports load TensorFlow)
    from pipeline.monitoring.monitor import run_monitor

    result = run_monitor(config)
    log = logging.getLogger("airflow.task")
    for line in result.lines:
        log.info("%s", line)
    # XComs are JSON: the reasons as the text `runs` and the report print.
    return {"verdict": result.decision.verdict, "reasons": [str(r) for r in result.decision.reasons],
            "execution_id": result.execution_id}


def _should_trigger(summary: dict) -> bool:
    return summary["verdict"] == "trigger"


def _record_trigger_task(config: PipelineConfig, ti) -> None:
    from airflow.operators.trigger_dagrun import XCOM_RUN_ID

    from pipeline.monitoring.monitor_record import note_run_started

    run_id = ti.xcom_pull(task_ids=TRIGGER_TASK, key=XCOM_RUN_ID)
    note_run_started(config.metadata_path, ti.xcom_pull(task_ids=MONITOR_TASK)["execution_id"],
                     f"triggered DAG run {run_id} of {config.pipeline_name}")


def _note_not_started(config: PipelineConfig, context) -> None:
    """start_training failed (e.g. the training DAG is not in Airflow's DB): say so on the pass."""
    from pipeline.monitoring.monitor_record import note_run_started

    summary = context["ti"].xcom_pull(task_ids=MONITOR_TASK)
    error = context.get("exception")
    note_run_started(config.metadata_path, summary["execution_id"],
                     f"not started: DAG {config.pipeline_name} could not be triggered ({error})")


def airflow_environment(config_path: str, airflow_home: str) -> dict[str, str]:
    """Environment for the airflow CLI: this project's DAG folder, SQLite, no examples."""
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": airflow_home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Importing TFX and TensorFlow takes 15-25 s, over Airflow's 30 s default on a busy machine.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        CONFIG_ENV: config_path,
    })
    return env


def run_with_airflow(config: PipelineConfig, logical_date: str | None = None) -> int:
    """One DAG run with `airflow dags test`; returns 0 when the DAG run succeeded.

    Holds the output folder's run lock as `taxi-pipeline run` does (RunLockedError when
    another run has it), and passes it to Airflow: a DAG run left behind by a killed parent
    still keeps other runs out.
    """
    from pipeline.runners.run_lock import exclusive_run, push_summary

    with exclusive_run(config) as guard:
        code = _run_with_airflow(config, logical_date, () if guard.lock is None else (guard.lock.fd,))
        check = guard.check()
        if code != 0 or check.withdrawn:
            print(push_summary(config, check), flush=True)
        return code


def _run_with_airflow(config: PipelineConfig, logical_date: str | None, lock_fds: tuple[int, ...]) -> int:
    home = pathlib.Path(config.output_root) / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / "pipeline.toml"
    config_path.write_text(to_toml(config))
    env = airflow_environment(str(config_path), str(home))
    airflow = str(pathlib.Path(sys.executable).parent / "airflow")
    print(f"Airflow home {home}; DAG {config.pipeline_name} from {DAGS_FOLDER}", flush=True)
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
    if migrate.returncode != 0:
        print(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-2000:]}", flush=True)
        return 1
    date = logical_date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    process = subprocess.run([airflow, "dags", "test", config.pipeline_name, date], env=env,
                             capture_output=True, text=True, pass_fds=lock_fds)
    output = process.stdout + process.stderr
    log = home / f"dags-test-{date.replace(':', '')}.log"
    log.write_text(output)
    state = dag_run_state(output)
    for line in task_lines(output):
        print(line, flush=True)
    # What the DAG's callbacks said about the run's provenance (changed spans, a record not written).
    for line in provenance_lines(output):
        print(line, flush=True)
    succeeded = process.returncode == 0 and state == "success"
    if succeeded:
        from pipeline import metadata
        from pipeline.evaluation import outcome
        dag_run = dag_run_id(output)
        run_ids = metadata.run_ids(metadata.open_store(config.metadata_path), config.pipeline_name)
        run_id = run_context_name(config.pipeline_name, dag_run) if dag_run else run_ids[-1]
        run_id = run_id if run_id in run_ids else run_ids[-1]
        print(outcome.describe(config, run_id).text, flush=True)
        _say_if_not_recorded(config, run_id)
    else:
        findings = gate_findings(output)
        if findings:
            print("\n".join(findings), flush=True)
    print(f"DAG run {state}; full Airflow output: {log}", flush=True)
    return 0 if succeeded else 1


def task_lines(output: str) -> list[str]:
    """'task <id>: SUCCESS|FAILED' for each task Airflow finished, in order."""
    lines = []
    for line in output.splitlines():
        for outcome in ("SUCCESS", "FAILED", "UP_FOR_RETRY"):
            marker = f"Marking task as {outcome}. dag_id="
            if marker in line:
                task = line.split("task_id=", 1)[1].split(",", 1)[0]
                lines.append(f"task {task}: {outcome}")
    return lines


def gate_findings(output: str) -> list[str]:
    """The data checks' message (the gate's findings, or a broken CSV) from a failed DAG run's output."""
    lines = output.splitlines()
    starts = [(i, marker) for i, line in enumerate(lines) for marker in ("DataGateError: ", "CsvError: ")
              if marker in line]
    if not starts:
        return []
    first, marker = starts[-1]
    message = [lines[first].split(marker, 1)[1]]
    for line in lines[first + 1:]:
        if not line.strip() or line.startswith("["):
            break
        message.append(line)
    return message


def _say_if_not_recorded(config: PipelineConfig, run_id: str) -> None:
    """A warning when the DAG's callbacks left no record (one they could not write has said why already)."""
    from pipeline import metadata
    from pipeline.governance import provenance

    try:
        if provenance.load(metadata.open_store(config.metadata_path), run_id) is None:
            print(f"Warning: run {run_id}: {provenance.NOT_RECORDED} (the DAG's callbacks did not "
                  "record it; the full Airflow output named below says why)", flush=True)
    except Exception as error:  # reading it back must not change the run's outcome
        print(f"Warning: run {run_id}: could not read its provenance back: {error}", flush=True)


def provenance_lines(output: str) -> list[str]:
    """What the DAG's provenance callbacks printed (changed spans, a record not written), from `airflow dags test`
    output."""
    from pipeline.governance import provenance

    markers = ("Data changed: ", f"{provenance.NOT_RECORDED}", "span files changed while the run ran")
    lines = []
    for line in output.splitlines():
        if any(marker in line for marker in markers):
            start = line.find("Data changed: ") if "Data changed: " in line else line.find("Warning: ")
            if line[max(start, 0):] not in lines:  # Airflow's handlers may print a record twice
                lines.append(line[max(start, 0):])
    return lines


def dag_run_id(output: str) -> str | None:
    """The DAG run's id in `airflow dags test` output (e.g. manual__2026-11-01T00:00:00+00:00)."""
    for line in reversed(output.splitlines()):
        if "DagRun Finished:" in line and "run_id=" in line:
            return line.split("run_id=", 1)[1].split(",", 1)[0].strip()
    return None


def dag_run_state(output: str) -> str:
    """The final state of the DAG run in `airflow dags test` output ('success', 'failed')."""
    for line in reversed(output.splitlines()):
        if "DagRun Finished:" in line and "state=" in line:
            return line.split("state=", 1)[1].split(",", 1)[0].strip()
    return "unknown"
