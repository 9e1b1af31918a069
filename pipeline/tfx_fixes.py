"""Two fixes to TFX 1.16 that a pipeline on an ML Metadata *server* (PostgreSQL) needs.

Both are written here because neither TFX nor ML Metadata has a release with the fix for
this stack (TFX 1.16 is the last for TensorFlow 2.16); `apply` installs them and is called
by create_pipeline, so every process that builds the pipeline (the local runner, Airflow's
workers) runs with them.

1. A cached component handed its outputs to the wrong keys. TFX's cache lookup
   (cache_utils._get_outputs_of_execution) pairs a cached execution's OUTPUT events with
   get_artifacts_by_id's answer, and with get_artifact_types_by_id's, by position. SQLite
   returns rows in the order asked; PostgreSQL in no set order, so a cached Transform gave
   its transform graph as `transformed_examples` and Trainer stopped with "inputs[examples]
   ... only got 0 artifacts". The replacement pairs by id; same inputs, same result.

2. A failed component's error was replaced by an SQL syntax error. ML Metadata 1.16 cannot
   store a string with a backslash in PostgreSQL (it strips the quotes of the E'...' literal
   PostgreSQL's escaping makes), and the execution result TFX records for a failure is
   JSON, whose escapes (\\n, \\") are backslashes: the insert failed, the execution stayed
   RUNNING and the run's message was the syntax error. On a server store the recorded
   message is written without them (the full message stays in the run's log).
"""
from __future__ import annotations

import collections
import json

from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration.portable import cache_utils
from tfx.orchestration.portable.mlmd import execution_lib
from tfx.types import artifact_utils

_ORIGINAL_SET_RESULT = execution_lib.set_execution_result


def _outputs_of_execution(metadata_handle, execution_id: int):
    """cache_utils._get_outputs_of_execution, with events, artifacts and types matched by id."""
    store = metadata_handle.store
    events = [event for event in store.get_events_by_execution_ids([execution_id])
              if event.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {artifact.id: artifact for artifact in store.get_artifacts_by_id([e.artifact_id for e in events])}
    if len(artifacts) != len({e.artifact_id for e in events}):
        return None  # an output artifact is gone: not a usable cache entry
    if any(artifact.state != metadata_store_pb2.Artifact.LIVE for artifact in artifacts.values()):
        return None  # a partial result, as TFX judges it
    types = {kind.id: kind for kind in store.get_artifact_types_by_id(
        sorted({artifact.type_id for artifact in artifacts.values()}))}

    def position(event):  # (output key, index in its list), as the event's path records them
        steps = event.path.steps
        return steps[0].key, steps[1].index if len(steps) > 1 else 0

    result = collections.defaultdict(list)
    for event in sorted(events, key=position):
        artifact = artifacts[event.artifact_id]
        result[position(event)[0]].append(artifact_utils.deserialize_artifact(types[artifact.type_id], artifact))
    return result


def _set_result_without_backslashes(execution_result, execution) -> None:
    _ORIGINAL_SET_RESULT(execution_result, execution)
    value = execution.custom_properties[execution_lib._EXECUTION_RESULT]  # noqa: SLF001 (TFX's own key)
    if "\\" not in value.string_value:
        return
    recorded = json.loads(value.string_value)
    for key, text in recorded.items():
        if isinstance(text, str):  # a newline becomes " | ", a quote "'", a backslash "/"
            recorded[key] = text.replace("\\", "/").replace('"', "'").replace("\r", "").replace("\n", " | ")
    written = json.dumps(recorded, ensure_ascii=False)
    # Whatever still needs an escape (a control character, a field of another type) is left out.
    value.string_value = written if "\\" not in written else json.dumps(
        {key: text for key, text in recorded.items() if "\\" not in json.dumps(text, ensure_ascii=False)},
        ensure_ascii=False)


def apply(server_store: bool) -> None:
    """Install the fixes; the second only for a server store (a SQLite store keeps TFX's message as is)."""
    cache_utils._get_outputs_of_execution = _outputs_of_execution  # noqa: SLF001
    execution_lib.set_execution_result = _set_result_without_backslashes if server_store else _ORIGINAL_SET_RESULT
