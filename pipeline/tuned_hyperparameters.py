"""Which tuned hyperparameters a run without tuning trains with: the newest in ML Metadata.

TFX's LatestArtifactStrategy fails the resolver when there is no artifact yet, which is
every run before the first search; this strategy resolves to nothing instead, and Trainer
(whose hyperparameters input is optional) then uses the code's defaults.
"""
from __future__ import annotations

from typing import Optional

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.components.common import resolver

KEY = "hyperparameters"


class NewestTunedOrNoneStrategy(resolver.ResolverStrategy):
    """Input: every HyperParameters artifact under `hyperparameters`; output: the newest, or none."""

    def resolve_artifacts(self, store: mlmd.MetadataStore,
                          input_dict: dict[str, list[types.Artifact]]) -> Optional[dict[str, list[types.Artifact]]]:
        return {KEY: sorted(input_dict.get(KEY, []), key=lambda artifact: artifact.id)[-1:]}
