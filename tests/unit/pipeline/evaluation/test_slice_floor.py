"""The per-slice floor's gating rule and how tuned and configured hyperparameters combine."""
import dataclasses
import types

import pytest

from models.model import HYPERPARAMETERS_KEY, Hyperparameters, resolve_hyperparameters
from pipeline.evaluation.slice_floor import is_gated, shortfall


@pytest.mark.parametrize("count, mean_label, gated", [
    (3234, 0.0, False),      # cash trips: no big tip recorded, AUC means nothing
    (3234, 0.01, False),     # 32 big tips: fewer than 50 of that class
    (1701, 0.6, True),       # credit-card trips: plenty of both
    (120, 0.5, True),
    (90, 0.5, False),        # 45 of each: below 50
])
def test_floor_applies_only_to_slices_with_enough_examples_of_each_class(count, mean_label, gated):
    assert is_gated(count, mean_label, 50) is gated


def test_shortfall_is_how_far_a_gated_slice_is_below_the_floor():
    assert shortfall(0.5, 1000, 0.5, 0.6, 50) == pytest.approx(0.1)
    assert shortfall(0.7, 1000, 0.5, 0.6, 50) == 0.0
    assert shortfall(0.0, 3000, 0.0, 0.6, 50) == 0.0  # one class only: AUC 0.0 is not a failure


def _values(hyperparameters) -> dict:
    # By field values: after the pipeline tests, TFX may have imported models.model afresh
    # for a Trainer run, and instances of the two class objects never compare equal.
    return dataclasses.asdict(hyperparameters)


def test_tuned_values_are_used_and_configured_ones_win():
    fn_args = types.SimpleNamespace(
        hyperparameters={"space": [], "values": {"learning_rate": 0.02, "hidden_units": "128,64", "embedding_dim": 4}},
        custom_config={HYPERPARAMETERS_KEY: {"embedding_dim": 16}})
    assert _values(resolve_hyperparameters(fn_args)) == _values(
        Hyperparameters(learning_rate=0.02, hidden_units=(128, 64), embedding_dim=16))


def test_without_tuned_values_the_code_defaults_apply():
    fn_args = types.SimpleNamespace(hyperparameters=None, custom_config={})
    assert _values(resolve_hyperparameters(fn_args)) == _values(Hyperparameters())
