"""Which model a candidate has to beat: the newest blessed model older than the candidate.

TFX's LatestBlessedModelStrategy picks the newest blessed model, which on a re-run with
nothing changed is the candidate itself: Evaluator then compares the model with itself,
re-runs, and Pusher pushes the same model again. Taking the newest blessed model trained
*before* the candidate keeps the baseline of a cached candidate unchanged, so the whole
re-run comes from the cache, while a new candidate is still held against what serves now.
"""
from __future__ import annotations

from typing import Optional

import ml_metadata as mlmd
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.common import resolver

MODEL_KEY, BLESSING_KEY, CANDIDATE_KEY = "model", "model_blessing", "candidate"


class BaselineBeforeCandidateStrategy(resolver.ResolverStrategy):
    """Inputs: every `model`, every `model_blessing`, and this run's `candidate` model."""

    def resolve_artifacts(self, store: mlmd.MetadataStore,
                          input_dict: dict[str, list[types.Artifact]]) -> Optional[dict[str, list[types.Artifact]]]:
        # The newest model of the candidate channel: IR-based runners pass just this run's,
        # TFX's Airflow runner every model its Trainer ever made.
        candidates = sorted(input_dict.get(CANDIDATE_KEY, []), key=lambda model: model.id)[-1:]
        result = {MODEL_KEY: [], BLESSING_KEY: [], CANDIDATE_KEY: candidates}
        if not candidates:
            return result
        candidate_id = candidates[0].id
        blessings = {
            blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): blessing
            for blessing in input_dict.get(BLESSING_KEY, [])
            if blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1}
        older_blessed = [model for model in input_dict.get(MODEL_KEY, [])
                         if model.id < candidate_id and model.id in blessings]
        if older_blessed:
            baseline = max(older_blessed, key=lambda model: model.id)
            result[MODEL_KEY], result[BLESSING_KEY] = [baseline], [blessings[baseline.id]]
        return result
