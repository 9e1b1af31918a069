"""Run the pipeline with TFX's LocalDagRunner, showing progress and the outcome.

The run holds its output folder alone (pipeline/runners/run_lock.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import pathlib
import re
import sys
import time
from typing import Iterator, TextIO

from absl import logging as absl_logging
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.evaluation import outcome
from pipeline.governance import provenance
from pipeline.monitoring import pipeline_status
from pipeline.pipeline import create_pipeline
from pipeline.prepare import prepare
from pipeline.runners import up_to_date
from pipeline.runners.progress import ComponentProgress
from pipeline.runners.run_lock import Guard, exclusive_run, push_summary


@dataclasses.dataclass
class RunResult:
    run_id: str | None
    succeeded: bool
    seconds: float
    durations: dict[str, float]
    pushed_version: str | None  # path of the version written to the serving dir
    error: str | None = None
    log_path: str = ""


class _RedactedPasswords(logging.Filter):
    """TFX's LocalDagRunner logs its whole ML Metadata connection config, a server's password included."""

    _FIELD = re.compile(r'password: "(?:[^"\\]|\\.)*"')

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "password" in message:
            record.msg, record.args = self._FIELD.sub('password: "***"', message), None
        return True


@contextlib.contextmanager
def _logs_to_file(path: pathlib.Path, progress: logging.Handler) -> Iterator[None]:
    """Send TFX's detailed log to `path`; the terminal shows progress lines, and a failure as the run's message.

    Records reach the terminal through the handlers already installed: the root logger's
    StreamHandler (absl's logging functions call logging.basicConfig() on their first record
    outside absl.app, here TFMA's on import), TensorFlow's own, and absl's. TFX's launcher
    logs "Execution 5 failed." through absl, which propagates to the root, so muting only
    below ERROR still printed "ERROR:absl:Execution 5 failed." before the run's message.
    They are muted for the run, errors included: a run that stops says why in its own
    message, naming this file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.addFilter(_RedactedPasswords())
    root = logging.getLogger()
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    # Python warnings and TensorFlow's own logger go to the file too.
    logging.captureWarnings(True)
    tf_handlers = logging.getLogger("tensorflow").handlers
    # Every handler writing to the terminal; the progress and file handlers are added after.
    quieted = [(handler, handler.level)
               for handler in root.handlers + tf_handlers + [absl_logging.get_absl_handler()]]
    for handler, level in quieted:
        handler.setLevel(logging.CRITICAL + 1)
    root.addHandler(progress)
    root.addHandler(file_handler)
    try:
        yield
    finally:
        root.removeHandler(progress)
        root.removeHandler(file_handler)
        file_handler.close()
        for handler, level in quieted:
            handler.setLevel(level)
        # Else absl's INFO records (ML Metadata's "MetadataStore with DB connection initialized")
        # reach the terminal from whatever the command does after the run.
        absl_logging.set_verbosity(verbosity)
        logging.captureWarnings(False)


def run_local(config: PipelineConfig, out: TextIO = sys.stdout) -> RunResult:
    """Run once. Failures (a stopped gate, a broken component) come back in the result;
    RunLockedError when another run uses the output folder."""
    with exclusive_run(config, out) as guard:
        return _run_local(config, out, guard)


def _run_local(config: PipelineConfig, out: TextIO, guard: Guard) -> RunResult:
    inputs = prepare(config)
    log_path = pathlib.Path(config.output_root) / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    # Building the pipeline logs TFX's own deprecation notices, nothing a user can act on: to the file.
    with _logs_to_file(log_path, logging.NullHandler()):
        tfx_pipeline = create_pipeline(config, inputs)
    progress = ComponentProgress(total=len(tfx_pipeline.components), out=out)
    print(f"Running pipeline {config.pipeline_name} on {config.data_root} (spans: {config.spans}); "
          f"log: {log_path}", file=out, flush=True)
    # Commit, versions and data hashes as the run starts; a line for each span changed since trained on.
    started_with = provenance.before_run(config, inputs, out)
    _remember(config, inputs, None, None, out)  # a run that does not finish leaves nothing to short-cut to
    before = set(_run_ids(config))
    started = time.monotonic()
    error = pushed = None
    with _logs_to_file(log_path, progress):
        try:
            LocalDagRunner().run(tfx_pipeline)
        except Exception as exc:  # reported below, naming the component that failed
            error = f"{progress.running or 'the pipeline'} failed: {exc}"
        seconds = time.monotonic() - started
        new_runs = [run for run in _run_ids(config) if run not in before]
        run_id = new_runs[-1] if new_runs else None
        if run_id:
            provenance.record_safely(config, run_id, started_with, out)
        check = guard.check()
        if error is None and check.withdrawn:  # recorded by nothing: cannot happen unless TFX changes
            print(push_summary(config, check), file=out, flush=True)
        if error is None and run_id:
            report = outcome.describe(config, run_id)
            print(report.text, file=out, flush=True)
            pushed = report.pushed_version
            if pushed:
                _write_model_card(config, pushed, out)
        # Whatever the outcome; the warning is also logged to the run's log.
        warning = pipeline_status.write_status_safely(config, run_ended=True)
        if warning:
            print(f"Warning: {warning}", file=out, flush=True)
    if error:
        print(f"\nRun stopped after {seconds:.1f} s: {error}\n{push_summary(config, check)} Full log: {log_path}",
              file=out, flush=True)
    else:
        print(f"Run {run_id} finished in {seconds:.1f} s.", file=out, flush=True)
    _remember(config, inputs, run_id if error is None else None, pushed, out)
    return RunResult(run_id, error is None, seconds, progress.durations, pushed, error, str(log_path))


def _remember(config: PipelineConfig, inputs, run_id: str | None, pushed: str | None, out: TextIO) -> None:
    """What a finished run ran on, so that a rerun with nothing changed can stop at once (up_to_date.py)."""
    try:
        if run_id:
            finished = datetime.datetime.now().isoformat(timespec="seconds")
            up_to_date.remember(config, inputs, up_to_date.LastRun(run_id, finished, pushed))
        else:
            up_to_date.forget(config)
    except OSError as error:  # the run stands; the next one simply runs in full
        print(f"Warning: could not write {up_to_date.STATE_FILE} ({error}); the next run will not be "
              "short-cut", file=out, flush=True)


def _write_model_card(config: PipelineConfig, pushed: str, out: TextIO) -> None:
    from pipeline.governance import model_card

    version = os.path.basename(pushed.rstrip("/"))
    try:
        paths = model_card.write(config, version)
    except Exception as error:  # the push stands; the card can be written again later
        print(f"Model card not written ({error}); retry with `taxi-pipeline card {version}`", file=out, flush=True)
        return
    print(f"Model card: {paths[1]} (evaluation report: {paths[2]})", file=out, flush=True)


def _run_ids(config: PipelineConfig) -> list[str]:
    if not metadata.store_exists(config.metadata_path):
        return []
    return metadata.run_ids(metadata.open_store(config.metadata_path), config.pipeline_name)
