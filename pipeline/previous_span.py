"""Resolver strategy: the statistics of the span before the one this run validates.

Drift is measured against the newest earlier span that got through the data gate, as
recorded in ML Metadata by SpanStatisticsGen in an earlier run; nothing is recomputed.
A span the gate stopped is skipped: comparing with it would let a shift that persists
pass from the second shifted span on. With no such span on record (the first run), the
result is empty and drift is not measured.
"""
from __future__ import annotations

from typing import Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.common import resolver
from tfx.types import artifact_utils

from pipeline import metadata
from pipeline.span_statistics import SPAN_SPLIT

STATISTICS_KEY, CURRENT_KEY = "statistics", "current"


def _span_statistics(artifacts: list[types.Artifact]) -> list[types.Artifact]:
    """Only SpanStatisticsGen's outputs: they have the one split named "span"."""
    return [a for a in artifacts if artifact_utils.decode_split_names(a.split_names) == [SPAN_SPLIT]]


def _passed_the_gate(store: mlmd.MetadataStore, statistics: types.Artifact) -> bool:
    """Whether a run that made these statistics (or reused them from cache) got through DataGate."""
    makers = [event.execution_id for event in store.get_events_by_artifact_ids([statistics.id])
              if event.type == metadata_store_pb2.Event.OUTPUT]
    runs = {context.name for execution_id in makers for context in store.get_contexts_by_execution(execution_id)
            if context.type in metadata.RUN_CONTEXT_TYPES}
    return any(node.node_id == "DataGate" and node.state in ("COMPLETE", "CACHED")
               for run in runs for node in metadata.node_runs(store, run))


class PreviousSpanStatisticsStrategy(resolver.ResolverStrategy):
    """Inputs: every `statistics` artifact and this run's `current` span statistics."""

    def resolve_artifacts(self, store: mlmd.MetadataStore,
                          input_dict: dict[str, list[types.Artifact]]) -> Optional[dict[str, list[types.Artifact]]]:
        # The newest of the current channel: TFX's Airflow runner passes every one ever made.
        current = sorted(_span_statistics(input_dict.get(CURRENT_KEY, [])), key=lambda a: a.id)[-1:]
        result = {STATISTICS_KEY: [], CURRENT_KEY: current}
        if current:
            earlier = [a for a in _span_statistics(input_dict.get(STATISTICS_KEY, []))
                       if 0 < a.span < current[0].span]
            newest_first = sorted(earlier, key=lambda a: (a.span, a.id), reverse=True)
            result[STATISTICS_KEY] = next(([a] for a in newest_first if _passed_the_gate(store, a)), [])
        return result
