"""A second try of a component in the same run, as Airflow makes when a worker died mid-task:
TFX's older launcher (the one Airflow's tasks run) registers the execution and declares its
outputs again. Without pipeline/tfx_fixes.py, ML Metadata refused both; with it, the second
try is the same execution with the same output artifacts, and it publishes."""
from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import data_types
from tfx.orchestration import metadata as tfx_metadata
from tfx.types import standard_artifacts

from pipeline import tfx_fixes

pytestmark = pytest.mark.timeout(120)


def _try_component(handle, pipeline_info, component_info, examples):
    """What the launcher's driver does for one try: contexts, execution, declared outputs."""
    contexts = handle.register_pipeline_contexts_if_not_exists(pipeline_info)
    execution = handle.register_execution(pipeline_info=pipeline_info, component_info=component_info,
                                          contexts=contexts, exec_properties={"steps": 10},
                                          input_artifacts={"examples": [examples]})
    model = standard_artifacts.Model()
    model.uri = f"{pipeline_info.pipeline_root}/Trainer/model/{execution.id}"
    model.name = f"model:{pipeline_info.run_id}"
    handle.update_execution(execution=execution, component_info=component_info,
                            output_artifacts={"model": [model]}, execution_state=tfx_metadata.EXECUTION_STATE_NEW,
                            contexts=contexts)
    return execution, model, contexts


def test_a_second_try_reuses_the_first_tries_execution_and_outputs(tmp_path):
    tfx_fixes.apply(server_store=False)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "metadata.db")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    pipeline_info = data_types.PipelineInfo("taxi-tips", str(tmp_path), run_id="manual__1")
    component_info = data_types.ComponentInfo("tfx.components.Trainer", "Trainer", pipeline_info)
    with tfx_metadata.Metadata(config) as handle:
        examples = standard_artifacts.Examples()
        examples.uri = str(tmp_path / "examples")
        handle.publish_artifacts([examples])
        first, first_model, _ = _try_component(handle, pipeline_info, component_info, examples)
        # The worker died here. The retry, in a new process, starts over:
        second, second_model, contexts = _try_component(handle, pipeline_info, component_info, examples)
        assert second.id == first.id
        assert second_model.id == first_model.id and second_model.uri == first_model.uri
        handle.publish_execution(component_info=component_info, output_artifacts={"model": [second_model]})
        store = handle.store
        [execution] = store.get_executions_by_id([first.id])
        assert execution.properties["state"].string_value == tfx_metadata.EXECUTION_STATE_COMPLETE
        events = store.get_events_by_execution_ids([first.id])
        assert sorted((e.type, e.artifact_id) for e in events) == sorted(
            [(metadata_store_pb2.Event.INPUT, examples.id), (metadata_store_pb2.Event.OUTPUT, first_model.id)])
        assert len(store.get_artifacts_by_type(standard_artifacts.Model.TYPE_NAME)) == 1
        assert contexts and len(store.get_executions_by_context(contexts[-1].id)) == 1
