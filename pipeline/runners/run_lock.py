"""One run at a time per output folder, and a serving folder that holds only recorded pushes.

Runs share the output folder's ML Metadata store and serving folder, so `exclusive_run`
holds an flock on `<output_root>/run.lock` for the run (the local and the Airflow runner
take it). The operating system drops the lock when the process ends, crashed or not; the
file names the run holding it. A run that ended without clearing the file crashed: the
next run withdraws any version it left in the serving folder unrecorded.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import pathlib
import shlex
import socket
import sys
from typing import Any, Iterator, TextIO

from pipeline import metadata
from pipeline.config import PipelineConfig, is_local
from pipeline.evaluation import atomic_pusher

LOCK_FILE = "run.lock"


class RunLockedError(ValueError):
    """Another run holds the output folder (a ValueError: the command line prints it and exits with 2)."""


@dataclasses.dataclass
class RunLock:
    path: pathlib.Path
    fd: int
    previous: dict[str, Any] | None  # what a run that crashed while holding the lock wrote in the file
    started: str = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))

    def record(self, **fields: Any) -> None:
        """Name this run in the lock file, for a run that finds the folder taken (and for recovery)."""
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                  "command": shlex.join(sys.argv), **fields}
        data = json.dumps(holder).encode()
        os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, len(data))
        os.fsync(self.fd)


def _holder(fd: int) -> dict[str, Any] | None:
    try:
        return json.loads(os.pread(fd, 1 << 16, 0) or b"null")
    except ValueError:  # being written this instant
        return None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "a run that has not named itself yet"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}, "
            f"command: {holder.get('command')}")


@contextlib.contextmanager
def run_lock(output_root: str) -> Iterator[RunLock]:
    """Hold `<output_root>/run.lock` while the block runs; RunLockedError, naming the holder, if another run has it."""
    path = pathlib.Path(output_root) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"{output_root} is in use by another pipeline run ({describe_holder(_holder(fd))}). One run at a "
                "time per output folder: runs share its ML Metadata store and serving folder. Wait for that run "
                f"to end or stop it, or set another output_root. (lock: {path})") from None
        lock = RunLock(path, fd, _holder(fd))
        lock.record()
        try:
            yield lock
        finally:
            os.ftruncate(fd, 0)  # ended cleanly: nothing for the next run to recover
    finally:
        os.close(fd)  # releases the lock, as the end of the process does after a crash


@dataclasses.dataclass
class ServingCheck:
    """What a run left in the serving folder."""
    pushed: list[int]  # new versions ML Metadata records
    withdrawn: list[int]  # new versions it does not record, taken out again
    leftovers: list[str]  # hidden staging folders of a push that did not finish


def _recorded_versions(config: PipelineConfig) -> set[int]:
    from pipeline.governance import lineage

    if not metadata.store_exists(config.metadata_path):
        return set()
    return {int(v) for v in lineage.pushed_models(metadata.open_store(config.metadata_path)) if v.isdigit()}


def check_serving_dir(config: PipelineConfig, before: set[int]) -> ServingCheck:
    """Withdraw every version that appeared since `before` but that ML Metadata does not record.

    The Pusher renames a version into place before TFX records it, and withdraws it when it
    fails itself; a failure after it returned (recording it) or a crash in between is caught here.
    """
    new = [v for v in atomic_pusher.numeric_versions(config.serving_dir) if v not in before]
    recorded = _recorded_versions(config) if new else set()
    withdrawn = [v for v in new if v not in recorded]
    for version in withdrawn:
        atomic_pusher.withdraw(config.serving_dir, version)
    return ServingCheck([v for v in new if v in recorded], withdrawn, atomic_pusher.leftovers(config.serving_dir))


def push_summary(config: PipelineConfig, check: ServingCheck) -> str:
    """One truthful sentence on the serving folder after a run that failed."""
    if check.pushed:
        text = (f"Pushed before the failure, and recorded in ML Metadata: "
                f"{', '.join(os.path.join(config.serving_dir, str(v)) for v in check.pushed)}.")
    elif check.withdrawn:
        text = (f"Nothing was pushed: version {', '.join(map(str, check.withdrawn))} reached {config.serving_dir} "
                "but ML Metadata never recorded it, so it was taken out again.")
    elif check.leftovers:
        text = f"Nothing was pushed; the serving dir {config.serving_dir} has no new version."
    else:
        text = f"Nothing was pushed; the serving dir {config.serving_dir} is unchanged."
    if check.leftovers:
        text += (f" A push that did not finish left {', '.join(check.leftovers)} there, a hidden name model "
                 "servers ignore; the next push removes it.")
    return text


class Guard:
    def __init__(self, config: PipelineConfig, lock: RunLock | None, before: set[int]):
        self.config, self.lock, self.before = config, lock, before
        self._check: ServingCheck | None = None

    def check(self) -> ServingCheck:
        """The serving folder after the run (withdrawing unrecorded versions), once."""
        if self._check is None:
            # A bucket has no atomic rename to withdraw with; the Pusher copies there as TFX does.
            self._check = (check_serving_dir(self.config, self.before) if is_local(self.config.serving_dir)
                           else ServingCheck([], [], []))
        return self._check


@contextlib.contextmanager
def exclusive_run(config: PipelineConfig, out: TextIO = sys.stdout) -> Iterator[Guard]:
    """The output folder for this run alone (RunLockedError if taken), with its serving folder checked after."""
    if not is_local(config.output_root):  # no flock on a bucket: the orchestrator runs one at a time
        yield Guard(config, None, set())
        return
    with run_lock(config.output_root) as lock:
        if lock.previous:
            _recover(config, lock.previous, out)
        before = set(atomic_pusher.numeric_versions(config.serving_dir))
        lock.record(serving_versions=sorted(before))
        guard = Guard(config, lock, before)
        try:
            yield guard
        finally:
            if guard._check is None:  # an exception (Ctrl-C) left the run: still nothing unrecorded may serve
                try:
                    check = guard.check()
                except Exception as error:  # the exception on its way out matters more
                    print(f"The serving folder could not be checked: {error}", file=out, flush=True)
                else:
                    if check.withdrawn:
                        print(push_summary(config, check), file=out, flush=True)


def _recover(config: PipelineConfig, previous: dict[str, Any], out: TextIO) -> None:
    print(f"The previous run on {config.output_root} ended without releasing it ({describe_holder(previous)}): "
          "it crashed or was killed.", file=out, flush=True)
    if "serving_versions" not in previous:  # it stopped before it could push
        return
    check = check_serving_dir(config, set(previous["serving_versions"]))
    if check.withdrawn:
        print(f"  Version {', '.join(map(str, check.withdrawn))} it copied to {config.serving_dir} was never "
              "recorded in ML Metadata: taken out of the serving folder.", file=out, flush=True)
