"""The Pusher's executor: a pushed version appears in the serving folder whole, or not at all.

TFX's own executor copies the model into `<serving_dir>/<version>/`, the folder model
servers poll, file by file (saved_model.pb last, but itself in place), then copies it again
to the PushedModel artifact (the archive copy). A server polling during the first copy can
load half a model, and a crash during the second leaves a served version that ML Metadata
never records while the run says nothing was pushed.

This executor keeps TFX's blessing checks and properties (`pushed`, `pushed_version`,
`pushed_destination`) and changes the order:

1. the archive copy to the artifact's uri;
2. a copy into `<serving_dir>/.<version>.staging/`, a hidden name no server takes for a version;
3. a rename to `<serving_dir>/<version>/`: on a local file system the version appears whole;
4. the properties; TFX records the artifact in ML Metadata after `Do` returns.

A failure after the rename takes the version back out (`withdraw`), so a failed Pusher
never leaves a version behind; staging folders of a crashed push are removed by the next
push. The version is the Unix time, or one more than the highest version there when that
is taken or newer (a push in the same second, a rollback), so a push never collides with
a version and is always the newest one, the one servers serve under their `latest` policy.
On remote file systems (gs://), where a folder cannot be renamed, the copy goes straight to
`<version>/` with saved_model.pb last, as TFX does.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import time
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from pipeline.config import is_local

STAGING = re.compile(r"^\.(\d+)\.staging$")
# Tests only: make a push fail at one of these points, as a crash there would, to check what
# a user is told and what is left. "<point>" raises; "<point>:kill" kills the process outright.
FAULT_ENV = "TAXI_PIPELINE_TEST_PUSH_FAULT"
FAULT_POINTS = ("after_archive", "after_staging", "after_rename")
# Attempts at a free version number when the chosen one is taken between choosing and renaming.
_RENAME_ATTEMPTS = 10


class InjectedPushFault(RuntimeError):
    """The failure FAULT_ENV asked for."""


def _fault(point: str) -> None:
    wanted, _, how = os.environ.get(FAULT_ENV, "").partition(":")
    if wanted != point:
        return
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedPushFault(f"injected push fault {point} ({FAULT_ENV})")


def staging_name(version: int) -> str:
    return f".{version}.staging"


def numeric_versions(serving_dir: str) -> list[int]:
    """Every numeric child of the serving folder, complete or not, lowest first."""
    if not fileio.isdir(serving_dir):
        return []
    names = [name.rstrip("/") for name in fileio.listdir(serving_dir)]
    return sorted(int(name) for name in names if name.isascii() and name.isdigit())


def leftovers(serving_dir: str) -> list[str]:
    """Staging folders of pushes that did not finish, by name."""
    if not fileio.isdir(serving_dir):
        return []
    return sorted(name.rstrip("/") for name in fileio.listdir(serving_dir) if STAGING.match(name.rstrip("/")))


def remove_leftovers(serving_dir: str) -> list[str]:
    """Delete the staging folders of pushes that did not finish; their names."""
    removed = leftovers(serving_dir)
    for name in removed:
        fileio.rmtree(os.path.join(serving_dir, name))
        logging.warning("Removed %s, left by a push that did not finish", os.path.join(serving_dir, name))
    return removed


def next_free_version(serving_dir: str, now: float) -> int:
    """The Unix time, or one more than the highest version there when that is taken or newer."""
    return max(int(now), max(numeric_versions(serving_dir), default=0) + 1)


def push(model_path: str, serving_dir: str, clock=time.time) -> tuple[int, str]:
    """Copy the SavedModel at `model_path` into the serving folder as a new version; (version, its path)."""
    fileio.makedirs(serving_dir)
    remove_leftovers(serving_dir)
    if not is_local(serving_dir):
        version = next_free_version(serving_dir, clock())
        destination = os.path.join(serving_dir, str(version))
        io_utils.copy_dir(model_path, destination, deny_regex_patterns=[r"saved_model\.pb$"])
        io_utils.copy_file(os.path.join(model_path, "saved_model.pb"), os.path.join(destination, "saved_model.pb"))
        return version, destination
    version = next_free_version(serving_dir, clock())
    staging = os.path.join(serving_dir, staging_name(version))
    try:
        io_utils.copy_dir(model_path, staging)
        _fault("after_staging")
        for _ in range(_RENAME_ATTEMPTS):
            destination = os.path.join(serving_dir, str(version))
            # os.rename would replace an empty folder of that name, so a taken name is checked first;
            # a non-empty one that appears in between makes the rename fail (ENOTEMPTY) instead.
            if not os.path.lexists(destination):
                try:
                    os.rename(staging, destination)
                    return version, destination
                except OSError as error:
                    if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
            version = next_free_version(serving_dir, clock())
        raise RuntimeError(f"no free version number in {serving_dir} after {_RENAME_ATTEMPTS} attempts")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # what is left is removed by the next push
        raise


def withdraw(serving_dir: str, version: int) -> str:
    """Take a version out of the serving folder at once (one rename), then delete it; where it went."""
    hidden = os.path.join(serving_dir, staging_name(version))
    os.rename(os.path.join(serving_dir, str(version)), hidden)
    shutil.rmtree(hidden, ignore_errors=True)  # what is left is removed by the next push
    return hidden


class Executor(tfx_pusher.Executor):
    """TFX's Pusher executor with the archive copy first and the serving copy staged, then renamed."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError(f"Invalid push destination {destination.WhichOneof('destination')}")
        filesystem = destination.filesystem
        if filesystem.versioning not in (pusher_pb2.Versioning.AUTO, pusher_pb2.Versioning.UNIX_TIMESTAMP):
            raise NotImplementedError(f"Invalid Versioning {filesystem.versioning}")

        # The archive copy first: a failure here leaves nothing in the serving folder.
        io_utils.copy_dir(model_path, model_push.uri)
        _fault("after_archive")
        version, serving_path = push(model_path, filesystem.base_directory)
        try:
            _fault("after_rename")
            self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))
        except BaseException:
            # Not recorded in ML Metadata: it must not stay where servers find it.
            if is_local(filesystem.base_directory):
                withdraw(filesystem.base_directory, version)
            raise
        logging.info("Model pushed to %s (archive copy %s).", serving_path, model_push.uri)
