"""The pipeline's three resolver strategies, and which one each runner gets.

- Baseline: the model that serves, as ML Metadata knows it: the model of the newest push
  older than the candidate. A push is a PushedModel with `pushed=1`, made by Pusher (its
  model is the one its Evaluator blessing names) or by `taxi-pipeline rollback` (the
  model of the push it copied). So a model the Evaluator blessed but the servability check
  rejected, or one a rollback took out of service, is never the baseline; nothing pushed
  yet, no baseline. TFX's LatestBlessedModelStrategy picks the newest blessed model,
  pushed or not, which on a re-run with nothing changed is the candidate itself: Evaluator
  then compares the model with itself, re-runs, and Pusher pushes the same model again.
  Only pushes recorded before the candidate was made count, so a cached candidate keeps
  the baseline it was evaluated against and the whole re-run comes from the cache, while
  a new candidate is held against what serves now.
- Previous span: the statistics of the newest earlier span that got through the data
  gate, as SpanStatisticsGen recorded them in an earlier run (nothing is recomputed). A
  span the gate stopped is skipped: comparing with it would let a shift that persists
  pass from the second shifted span on. None on record (the first run): drift is not
  measured.
- Tuned hyperparameters: the newest on record, or none. TFX's LatestArtifactStrategy
  fails the resolver when there is no artifact yet (every run before the first search);
  resolving to nothing lets Trainer, whose input is optional, use the code's defaults.

Kubeflow v2 compiles only TFX's built-in strategies, so the `*_resolver` functions swap
in the nearest built-in one there.
"""
from __future__ import annotations

from typing import Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.common import resolver
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.types import Channel, artifact_utils, standard_artifacts

from pipeline import artifacts, metadata

MODEL_KEY, BLESSING_KEY, CANDIDATE_KEY = "model", "model_blessing", "candidate"
STATISTICS_KEY, CURRENT_KEY = "statistics", "current"
HYPERPARAMETERS_KEY = "hyperparameters"
Resolved = Optional[dict[str, list[types.Artifact]]]
INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
MODEL_ID_PROPERTY = evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY  # on a ModelBlessing: its model


def _pushed_model_id(store: mlmd.MetadataStore, pushed: metadata_store_pb2.Artifact, depth: int = 0) -> int | None:
    """The id of the Model a push serves: Pusher's model, or that of the push a Rollback copied."""
    # A cached Pusher records the PushedModel it reused as its output again: the first producer pushed it.
    producers = sorted((event.execution_id for event in store.get_events_by_artifact_ids([pushed.id])
                        if event.type in OUTPUT_EVENTS))[:1]
    if not producers or depth > 20:  # a chain of rollbacks of rollbacks is short; a loop is a broken store
        return None
    inputs = [event.artifact_id for event in store.get_events_by_execution_ids(producers)
              if event.type in INPUT_EVENTS]
    by_type: dict[str, list[metadata_store_pb2.Artifact]] = {}
    found = store.get_artifacts_by_id(inputs)
    names = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in found}))}
    for artifact in found:
        by_type.setdefault(names[artifact.type_id], []).append(artifact)
    if by_type.get(standard_artifacts.Model.TYPE_NAME):
        return by_type[standard_artifacts.Model.TYPE_NAME][0].id
    # This pipeline's Pusher takes the model from the servability blessing; the Evaluator
    # blessing beside it names the model.
    for blessing in by_type.get(standard_artifacts.ModelBlessing.TYPE_NAME, []):
        model_id = metadata.custom_value(blessing, MODEL_ID_PROPERTY)
        if model_id:
            return int(model_id)
    # A Rollback: its input is the PushedModel it copied.
    for original in by_type.get(standard_artifacts.PushedModel.TYPE_NAME, []):
        return _pushed_model_id(store, original, depth + 1)
    return None


def _newest_push_before(store: mlmd.MetadataStore, candidate: types.Artifact) -> metadata_store_pb2.Artifact | None:
    """The newest PushedModel that pushed something (Pusher's or a rollback's) recorded before the candidate.

    Artifact ids grow in the order artifacts are recorded, so these are the pushes made
    before the candidate was: a later one (this very candidate's push, seen by a re-run)
    must not change a cached candidate's baseline. Only the candidate's pipeline counts.
    """
    pipelines = {context.id for context in store.get_contexts_by_artifact(candidate.id) if context.type == "pipeline"}
    earlier = [artifact for artifact in store.get_artifacts_by_type(standard_artifacts.PushedModel.TYPE_NAME)
               if artifact.id < candidate.id and metadata.custom_value(artifact, "pushed") == 1]
    for pushed in sorted(earlier, key=lambda artifact: artifact.id, reverse=True):
        if not pipelines or pipelines & {context.id for context in store.get_contexts_by_artifact(pushed.id)}:
            return pushed
    return None


class BaselineBeforeCandidateStrategy(resolver.ResolverStrategy):
    """Inputs: every `model`, every `model_blessing`, and this run's `candidate` model."""

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]) -> Resolved:
        # The newest model of the candidate channel: IR-based runners pass just this run's,
        # TFX's Airflow runner every model its Trainer ever made.
        candidates = sorted(input_dict.get(CANDIDATE_KEY, []), key=lambda model: model.id)[-1:]
        result = {MODEL_KEY: [], BLESSING_KEY: [], CANDIDATE_KEY: candidates}
        if not candidates:
            return result
        pushed = _newest_push_before(store, candidates[0])
        serving_id = _pushed_model_id(store, pushed) if pushed is not None else None
        models = {model.id: model for model in input_dict.get(MODEL_KEY, [])}
        if serving_id not in models:  # nothing pushed yet (or its model is gone): no baseline
            return result
        result[MODEL_KEY] = [models[serving_id]]
        result[BLESSING_KEY] = [
            blessing for blessing in input_dict.get(BLESSING_KEY, [])
            if blessing.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
            and blessing.get_int_custom_property(MODEL_ID_PROPERTY) == serving_id][-1:]
        return result


def _span_statistics(candidates: list[types.Artifact]) -> list[types.Artifact]:
    """Only SpanStatisticsGen's outputs: they have the one split named after the span."""
    return [a for a in candidates if artifact_utils.decode_split_names(a.split_names) == [artifacts.SPAN_SPLIT]]


def _passed_the_gate(store: mlmd.MetadataStore, statistics: types.Artifact) -> bool:
    """Whether a run that made these statistics (or reused them from cache) got through DataGate."""
    makers = [event.execution_id for event in store.get_events_by_artifact_ids([statistics.id])
              if event.type == metadata_store_pb2.Event.OUTPUT]
    runs = {context.name for execution_id in makers for context in store.get_contexts_by_execution(execution_id)
            if context.type in metadata.RUN_CONTEXT_TYPES}
    return any(node.node_id == artifacts.DATA_GATE and node.state in ("COMPLETE", "CACHED")
               for run in runs for node in metadata.node_runs(store, run))


class PreviousSpanStatisticsStrategy(resolver.ResolverStrategy):
    """Inputs: every `statistics` artifact and this run's `current` span statistics."""

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]) -> Resolved:
        # The newest of the current channel: TFX's Airflow runner passes every one ever made.
        current = sorted(_span_statistics(input_dict.get(CURRENT_KEY, [])), key=lambda a: a.id)[-1:]
        result = {STATISTICS_KEY: [], CURRENT_KEY: current}
        if current:
            earlier = [a for a in _span_statistics(input_dict.get(STATISTICS_KEY, []))
                       if 0 < a.span < current[0].span]
            newest_first = sorted(earlier, key=lambda a: (a.span, a.id), reverse=True)
            result[STATISTICS_KEY] = next(([a] for a in newest_first if _passed_the_gate(store, a)), [])
        return result


class NewestTunedOrNoneStrategy(resolver.ResolverStrategy):
    """Input: every HyperParameters artifact under `hyperparameters`; output: the newest, or none."""

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]) -> Resolved:
        return {HYPERPARAMETERS_KEY: sorted(input_dict.get(HYPERPARAMETERS_KEY, []), key=lambda a: a.id)[-1:]}


def baseline_resolver(candidate: Channel, kubeflow: bool) -> Resolver:
    every_model = {MODEL_KEY: Channel(type=standard_artifacts.Model),
                   BLESSING_KEY: Channel(type=standard_artifacts.ModelBlessing)}
    if kubeflow:
        # The newest blessed model is the baseline there; a re-run with nothing changed
        # re-evaluates against itself.
        return Resolver(strategy_class=LatestBlessedModelStrategy, **every_model).with_id(artifacts.BASELINE_RESOLVER)
    return Resolver(strategy_class=BaselineBeforeCandidateStrategy, **{CANDIDATE_KEY: candidate},
                    **every_model).with_id(artifacts.BASELINE_RESOLVER)


def previous_span_resolver(current: Channel, kubeflow: bool) -> Resolver:
    every_statistics = {STATISTICS_KEY: Channel(type=standard_artifacts.ExampleStatistics)}
    if kubeflow:
        # The newest statistics on record; DriftSkewCheck uses them only if they are of an earlier span.
        return Resolver(strategy_class=LatestArtifactStrategy,
                        **every_statistics).with_id(artifacts.PREVIOUS_SPAN_RESOLVER)
    return Resolver(strategy_class=PreviousSpanStatisticsStrategy, **every_statistics,
                    **{CURRENT_KEY: current}).with_id(artifacts.PREVIOUS_SPAN_RESOLVER)


def tuned_hyperparameters_resolver(kubeflow: bool) -> Resolver:
    # LatestArtifactStrategy (Kubeflow) needs one tuned artifact to exist.
    return Resolver(strategy_class=LatestArtifactStrategy if kubeflow else NewestTunedOrNoneStrategy,
                    **{HYPERPARAMETERS_KEY: Channel(type=standard_artifacts.HyperParameters)},
                    ).with_id(artifacts.TUNED_HYPERPARAMETERS_RESOLVER)
