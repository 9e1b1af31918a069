"""Five fixes to TFX 1.16: three that a pipeline on an ML Metadata *server* (PostgreSQL) needs,
one that retried Airflow tasks need on any store, and one for Beam on this machine.

They are written here because neither TFX nor ML Metadata has a release with the fix for
this stack (TFX 1.16 is the last for TensorFlow 2.16); `apply` installs them and is called
by create_pipeline, so every process that builds the pipeline (the local runner, Airflow's
workers) runs with them.

1. A cached component handed its outputs to the wrong keys. TFX's cache lookup
   (cache_utils._get_outputs_of_execution) pairs a cached execution's OUTPUT events with
   get_artifacts_by_id's answer, and with get_artifact_types_by_id's, by position. SQLite
   returns rows in the order asked; PostgreSQL in no set order, so a cached Transform gave
   its transform graph as `transformed_examples` and Trainer stopped with "inputs[examples]
   ... only got 0 artifacts". The replacement pairs by id; same inputs, same result.

2. The same pairing by position in the older launcher that Airflow's tasks run
   (tfx.orchestration.metadata.Metadata._get_outputs_of_events): on a Celery worker, a cached
   Transform handed Trainer an Examples artifact typed as another type, and Trainer stopped
   with "Artifact has no property 'split_names'". Replaced by the same pairing by id.

3. A retried Airflow task could not run its component again. When a worker dies in the middle
   of a task, Airflow retries it; TFX's older launcher then finds the component's run context
   from the first try and reuses that try's execution, but records its input events again,
   which ML Metadata refuses ("Given event already exists"), so the retry failed at once; and
   it declares new output artifacts with the names of the first try's ("Given node already
   exists"). Now the execution is recorded with only the events it lacks, and the outputs
   are the first try's artifacts (same key, same index, same folder); the component runs
   again into those folders (TFX's own choice for retries) and is published as usual.

4. A failed component's error was replaced by an SQL syntax error. ML Metadata 1.16 cannot
   store a string with a backslash in PostgreSQL (it strips the quotes of the E'...' literal
   PostgreSQL's escaping makes), and the execution result TFX records for a failure is
   JSON, whose escapes (\\n, \\") are backslashes: the insert failed, the execution stayed
   RUNNING and the run's message was the syntax error. On a server store the recorded
   message is written without them (the full message stays in the run's log).

5. Every Beam component packaged TFX for nothing and left the package in /tmp. To ship TFX
   to remote Beam workers, every Beam executor without a dependency flag builds an sdist of
   the installed TFX (dependency_utils.make_beam_dependency_flags: about 1 s and a 42 MB
   folder under the system temp folder, never removed). The DirectRunner, in memory or
   with worker processes, runs on this machine's installed TFX and stages nothing, so for
   it the arguments now stay as they are; remote runners (Dataflow, Flink, Spark) still get
   the package. A day of test and benchmark runs had left 1,600 such folders (67 GB).
"""
from __future__ import annotations

import collections
import json

from ml_metadata import errors as mlmd_errors
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata as tfx_metadata
from tfx.orchestration.portable import cache_utils
from tfx.orchestration.portable.mlmd import execution_lib
from tfx.types import artifact_utils
from tfx.utils import dependency_utils

from pipeline.runners import beam_profiles

_ORIGINAL_SET_RESULT = execution_lib.set_execution_result
_ORIGINAL_DEPENDENCY_FLAGS = dependency_utils.make_beam_dependency_flags
_ORIGINAL_REGISTER_EXECUTION = tfx_metadata.Metadata.register_execution
_ORIGINAL_UPDATE_EXECUTION = tfx_metadata.Metadata.update_execution


def _outputs_of_execution(metadata_handle, execution_id: int):
    """cache_utils._get_outputs_of_execution, with events, artifacts and types matched by id."""
    return _outputs_of_events(metadata_handle.store, metadata_handle.store.get_events_by_execution_ids([execution_id]),
                              live_only=True)


def _airflow_outputs_of_events(self, events):
    """tfx.orchestration.metadata.Metadata._get_outputs_of_events, matched by id."""
    # This launcher records its own artifact states (a "published" property), not ML Metadata's LIVE.
    return _outputs_of_events(self.store, events, live_only=False)


def _outputs_of_events(store, events, live_only: bool):
    """The OUTPUT events' artifacts by output key, in their recorded order; None if one is gone or partial."""
    events = [event for event in events if event.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {artifact.id: artifact for artifact in store.get_artifacts_by_id([e.artifact_id for e in events])}
    if len(artifacts) != len({e.artifact_id for e in events}):
        return None  # an output artifact is gone: not a usable cache entry
    if live_only and any(artifact.state != metadata_store_pb2.Artifact.LIVE for artifact in artifacts.values()):
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


def _register_execution_again_on_retry(self, pipeline_info, component_info, contexts, exec_properties=None,
                                      input_artifacts=None):
    """Metadata.register_execution, which also works for the second try of a component."""
    try:
        return _ORIGINAL_REGISTER_EXECUTION(self, pipeline_info, component_info, contexts, exec_properties,
                                            input_artifacts)
    except mlmd_errors.AlreadyExistsError:
        pass  # an earlier try registered this component's execution and its input events
    run_context = self.get_component_run_context(component_info)
    [earlier] = self.store.get_executions_by_context(context_id=run_context.id)
    recorded = {event.artifact_id for event in self.store.get_events_by_execution_ids([earlier.id])
                if event.type == metadata_store_pb2.Event.INPUT}
    execution = self._prepare_execution(tfx_metadata.EXECUTION_STATE_NEW, exec_properties or {},  # noqa: SLF001
                                        pipeline_info, component_info)
    execution.id = earlier.id
    # TFX's own pairing, told which inputs already have their event: those go without one.
    missing = self._artifact_and_event_pairs(artifact_dict=input_artifacts or {},  # noqa: SLF001
                                             event_type=metadata_store_pb2.Event.INPUT,
                                             registered_artifacts_ids=recorded)
    self.store.put_execution(execution=execution, artifact_and_events=missing, contexts=contexts + [run_context])
    contexts.append(run_context)
    return execution


def _update_execution_with_earlier_outputs(self, execution, component_info, input_artifacts=None,
                                           output_artifacts=None, exec_properties=None, execution_state=None,
                                           artifact_state=None, contexts=None):
    """Metadata.update_execution, where an output the execution already declared (in an earlier
    try) is that artifact again rather than a second one of the same name."""
    if output_artifacts and execution.id:
        earlier = {(event.path.steps[0].key, event.path.steps[1].index): event.artifact_id
                   for event in self.store.get_events_by_execution_ids([execution.id])
                   if event.type == metadata_store_pb2.Event.OUTPUT and len(event.path.steps) > 1}
        for key, artifacts in output_artifacts.items():
            for index, artifact in enumerate(artifacts):
                if not artifact.id and (key, index) in earlier:
                    artifact.id = earlier[(key, index)]
    return _ORIGINAL_UPDATE_EXECUTION(self, execution, component_info, input_artifacts=input_artifacts,
                                      output_artifacts=output_artifacts, exec_properties=exec_properties,
                                      execution_state=execution_state, artifact_state=artifact_state,
                                      contexts=contexts)


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


def _dependency_flags_for_remote_runners(beam_pipeline_args: list[str]) -> list[str]:
    """TFX's make_beam_dependency_flags, except for the DirectRunner, which needs no package (fix 5)."""
    if beam_profiles.runs_on_direct_runner(beam_pipeline_args):
        return beam_pipeline_args
    return _ORIGINAL_DEPENDENCY_FLAGS(beam_pipeline_args)


def apply(server_store: bool) -> None:
    """Install the fixes; the fourth only for a server store (a SQLite store keeps TFX's message as is)."""
    cache_utils._get_outputs_of_execution = _outputs_of_execution  # noqa: SLF001
    tfx_metadata.Metadata._get_outputs_of_events = _airflow_outputs_of_events  # noqa: SLF001
    tfx_metadata.Metadata.register_execution = _register_execution_again_on_retry
    tfx_metadata.Metadata.update_execution = _update_execution_with_earlier_outputs
    execution_lib.set_execution_result = _set_result_without_backslashes if server_store else _ORIGINAL_SET_RESULT
    dependency_utils.make_beam_dependency_flags = _dependency_flags_for_remote_runners
