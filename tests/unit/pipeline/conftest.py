"""A real ML Metadata store in tmp_path, and a recorder that writes runs into it as TFX's runners do.

LocalDagRunner (and Kubeflow v2) attribute each execution to three contexts: `pipeline`
(the pipeline name), `pipeline_run` (the run id) and `node` ("<pipeline>.<node id>",
shared by every run). TFX's Airflow runner uses `pipeline`, `run` ("<pipeline>.<run id>")
and `component_run` ("<pipeline>.<run id>.<node id>"). Outputs are OUTPUT events whose
path is (key, index); a cached execution records the artifacts it reused as its outputs.
"""
from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata

if TYPE_CHECKING:  # TensorFlow, TFX and TFMA load only for the tests that use them
    from tensorflow_model_analysis.proto import validation_result_pb2
    from tfx import types

    from pipeline.config import PipelineConfig

PIPELINE_NAME = "taxi-tips"
STATES = {"COMPLETE": metadata_store_pb2.Execution.COMPLETE, "CACHED": metadata_store_pb2.Execution.CACHED,
          "FAILED": metadata_store_pb2.Execution.FAILED, "RUNNING": metadata_store_pb2.Execution.RUNNING}


def open_writable_store(path: pathlib.Path) -> metadata_store.MetadataStore:
    return metadata.open_store(path, metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)


class Recorder:
    """Records executions of pipeline runs in a store, registering their tfx artifacts (which get their ids)."""

    def __init__(self, store: metadata_store.MetadataStore, pipeline_name: str = PIPELINE_NAME):
        self.store = store
        self.pipeline_name = pipeline_name

    def _context(self, type_name: str, name: str) -> metadata_store_pb2.Context:
        existing = self.store.get_context_by_type_and_name(type_name, name)
        if existing is not None:
            return existing
        type_id = self.store.put_context_type(metadata_store_pb2.ContextType(name=type_name))
        [context_id] = self.store.put_contexts([metadata_store_pb2.Context(type_id=type_id, name=name)])
        return self.store.get_contexts_by_id([context_id])[0]

    def link(self, run_id: str) -> None:
        """LocalDagRunner makes a run's context a child of the pipeline's (execution() does not)."""
        self.store.put_parent_contexts([metadata_store_pb2.ParentContext(
            child_id=self.store.get_context_by_type_and_name("pipeline_run", run_id).id,
            parent_id=self.store.get_context_by_type_and_name("pipeline", self.pipeline_name).id)])

    def register(self, artifact: types.Artifact) -> types.Artifact:
        """Stores an artifact on its own (no producer), so it has an id."""
        artifact.type_id = self.store.put_artifact_type(artifact.artifact_type)
        [artifact.id] = self.store.put_artifacts([artifact.mlmd_artifact])
        return artifact

    def execution(self, run_id: str, node_id: str, state: str = "COMPLETE",
                  inputs: dict[str, list[types.Artifact]] | None = None,
                  outputs: dict[str, list[types.Artifact]] | None = None, airflow: bool = False) -> int:
        """One execution of `node_id` in run `run_id`; returns its id. Outputs not yet stored are stored."""
        if airflow:
            run_name = f"{self.pipeline_name}.{run_id}"
            contexts = [self._context("pipeline", self.pipeline_name), self._context("run", run_name),
                        self._context("component_run", f"{run_name}.{node_id}")]
        else:
            contexts = [self._context("pipeline", self.pipeline_name), self._context("pipeline_run", run_id),
                        self._context("node", f"{self.pipeline_name}.{node_id}")]
        type_id = self.store.put_execution_type(metadata_store_pb2.ExecutionType(name=f"taxi.{node_id}"))
        execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=STATES[state])
        pairs, recorded = [], []
        for kind, by_key in ((metadata_store_pb2.Event.INPUT, inputs or {}),
                             (metadata_store_pb2.Event.OUTPUT, outputs or {})):
            for key, listed in by_key.items():
                for index, artifact in enumerate(listed):
                    if not artifact.type_id:
                        artifact.type_id = self.store.put_artifact_type(artifact.artifact_type)
                    event = metadata_store_pb2.Event(type=kind, path=metadata_store_pb2.Event.Path(steps=[
                        metadata_store_pb2.Event.Path.Step(key=key), metadata_store_pb2.Event.Path.Step(index=index)]))
                    pairs.append((artifact.mlmd_artifact, event))
                    recorded.append(artifact)
        execution_id, artifact_ids, _ = self.store.put_execution(execution, pairs, contexts)
        for artifact, artifact_id in zip(recorded, artifact_ids):
            artifact.id = artifact_id
        return execution_id


@pytest.fixture
def metadata_path(tmp_path) -> pathlib.Path:
    return tmp_path / "metadata.db"


@pytest.fixture
def recorder(metadata_path) -> Recorder:
    """A recorder writing into a new sqlite ML Metadata store at `metadata_path`."""
    return Recorder(open_writable_store(metadata_path))


# An Evaluator output without Beam or a model: TFMA's own validator judges given per-slice metrics against the
# pipeline's EvalConfig, and its own writer's converters make the records Evaluator writes.
# {"example_count": ..., "mean_label": ..., "auc": ..., "auc_diff": ... (with a baseline); optionally the 95%
# intervals Evaluator's jackknife gives: "auc_interval": (lower, upper), "auc_diff_interval": (lower, upper)}
Row = dict


def write_evaluation(uri: pathlib.Path, rows: dict[tuple, Row],
                     config: PipelineConfig) -> validation_result_pb2.ValidationResult:
    """Writes metrics and validations under `uri` as Evaluator would for these slices; returns the validation.

    `rows` maps TFMA slice keys (() for overall, (("payment_type", "Cash"),) ...) to their metric values. With
    "auc_diff" in the overall row the evaluation had a baseline model (its change threshold applies).
    """
    import tensorflow as tf
    from scipy import stats
    from tensorflow_model_analysis.api import types
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.metrics import metric_types
    from tensorflow_model_analysis.utils import config_util
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as writer

    from pipeline.evaluation import auc_change_bound, eval_config, slice_floor

    def with_interval(value, interval):
        """The value as TFMA's jackknife hands it on: a t-distribution whose 95% interval is `interval`."""
        if interval is None:
            return value
        lower, upper = interval
        t = stats.t.ppf(0.975, 19)
        return types.ValueWithTDistribution(sample_mean=(lower + upper) / 2, sample_standard_deviation=(upper - lower)
                                            / 2 / t, sample_degrees_of_freedom=19, unsampled_value=value)

    with_baseline = "auc_diff" in rows.get((), {})
    evaluation = config_util.update_eval_config_with_defaults(
        eval_config.eval_config(config), has_baseline=with_baseline, rubber_stamp=not with_baseline)
    candidate = "candidate" if with_baseline else ""

    def key(name, model=candidate, is_diff=False):
        return metric_types.MetricKey(name=name, model_name=model, example_weighted=False, is_diff=is_diff)

    combine = writer.CombineValidations(evaluation, rubber_stamp=not with_baseline)
    validation = combine.create_accumulator()
    uri.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(uri / "metrics-00000-of-00001.tfrecord")) as metrics_file:
        for slice_key, row in rows.items():
            metrics = {key("example_count"): row["example_count"], key("mean_label"): row["mean_label"],
                       key("auc"): with_interval(row["auc"], row.get("auc_interval")),
                       key(slice_floor.NAME): slice_floor.shortfall(row["auc"], row["example_count"], row["mean_label"],
                                                                    config.min_slice_auc, config.min_slice_examples)}
            if with_baseline:
                change = with_interval(row["auc_diff"], row.get("auc_diff_interval"))
                metrics[key("auc", is_diff=True)] = change
                # What AUCChangeUpperBound adds after the intervals (pipeline/evaluation/auc_change_bound.py).
                metrics[key(auc_change_bound.NAME, is_diff=True)] = auc_change_bound.upper_bound(change)
                metrics[key("auc", model="baseline")] = row["auc"] - row["auc_diff"]
                metrics[key(slice_floor.NAME, model="baseline")] = 0.0
            validation = combine.add_input(validation, metrics_validator.validate_metrics((slice_key, metrics),
                                                                                         evaluation))
            metrics_file.write(writer.convert_slice_metrics_to_proto((slice_key, metrics), None).SerializeToString())
    validation = combine.extract_output(validation)
    with tf.io.TFRecordWriter(str(uri / "validations.tfrecord")) as validations_file:
        validations_file.write(validation.SerializeToString())
    return validation
