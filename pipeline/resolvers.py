"""The pipeline's three resolver strategies, and which one each runner gets.

- Baseline: the newest blessed model *older than the candidate*. TFX's
  LatestBlessedModelStrategy picks the newest blessed model, which on a re-run with
  nothing changed is the candidate itself: Evaluator then compares the model with
  itself, re-runs, and Pusher pushes the same model again. Taking the newest blessed
  model trained before the candidate keeps a cached candidate's baseline unchanged, so
  the whole re-run comes from the cache, while a new candidate is still held against
  what serves now.
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


class BaselineBeforeCandidateStrategy(resolver.ResolverStrategy):
    """Inputs: every `model`, every `model_blessing`, and this run's `candidate` model."""

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]) -> Resolved:
        # The newest model of the candidate channel: IR-based runners pass just this run's,
        # TFX's Airflow runner every model its Trainer ever made.
        candidates = sorted(input_dict.get(CANDIDATE_KEY, []), key=lambda model: model.id)[-1:]
        result = {MODEL_KEY: [], BLESSING_KEY: [], CANDIDATE_KEY: candidates}
        if not candidates:
            return result
        candidate_id = candidates[0].id
        blessings = {
            blessing.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): blessing
            for blessing in input_dict.get(BLESSING_KEY, [])
            if blessing.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1}
        older_blessed = [model for model in input_dict.get(MODEL_KEY, [])
                         if model.id < candidate_id and model.id in blessings]
        if older_blessed:
            baseline = max(older_blessed, key=lambda model: model.id)
            result[MODEL_KEY], result[BLESSING_KEY] = [baseline], [blessings[baseline.id]]
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
