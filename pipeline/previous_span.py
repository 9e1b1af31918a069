"""Resolver strategy: the statistics of the span before the one this run validates.

Drift is measured against the newest span ingested before the current one, as recorded
in ML Metadata by SpanStatisticsGen in an earlier run; nothing is recomputed. With no
earlier span on record (the first run), the result is empty and drift is not measured.
"""
from __future__ import annotations

from typing import Optional

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.components.common import resolver
from tfx.types import artifact_utils

from pipeline.span_statistics import SPAN_SPLIT

STATISTICS_KEY, CURRENT_KEY = "statistics", "current"


def _span_statistics(artifacts: list[types.Artifact]) -> list[types.Artifact]:
    """Only SpanStatisticsGen's outputs: they have the one split named "span"."""
    return [a for a in artifacts if artifact_utils.decode_split_names(a.split_names) == [SPAN_SPLIT]]


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
            if earlier:
                result[STATISTICS_KEY] = [max(earlier, key=lambda a: (a.span, a.id))]
        return result
