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


def test_the_floor_travels_in_the_class_name_and_tfma_finds_the_class():
    import importlib

    from pipeline.evaluation import slice_floor
    name = slice_floor.class_name(0.55, 50)
    assert name == "SliceAUCShortfall_floor_0p55_min_50"
    assert slice_floor.parameters(name) == (0.55, 50)
    assert slice_floor.parameters("SliceAUCShortfall") is None
    # How TFMA resolves a metric's class: getattr on its module.
    metric = getattr(importlib.import_module(slice_floor.__name__), name)()
    assert metric.get_config()["floor"] == 0.55 and metric.get_config()["min_examples"] == 50
    with pytest.raises(ValueError, match="floor"):
        slice_floor.class_name(1.5, 50)


def test_the_evaluators_config_holds_no_backslash_and_its_thresholds_read_back(tmp_path):
    """ML Metadata 1.16 on PostgreSQL cannot store a string with a backslash (coarse_auc.py)."""
    from google.protobuf import json_format
    from tensorflow_model_analysis.writers import eval_config_writer

    from pipeline.config import PipelineConfig
    from pipeline.evaluation.eval_config import eval_config, thresholds_used
    config = PipelineConfig(min_slice_auc=0.6, min_slice_examples=40)
    assert "\\" not in json_format.MessageToJson(eval_config(config))
    assert {m.config for spec in eval_config(config).metrics_specs for m in spec.metrics} == {""}
    (tmp_path / "eval_config.json").write_text(eval_config_writer._serialize_eval_run(eval_config(config), "", "", {}))
    used = thresholds_used(str(tmp_path), PipelineConfig())
    assert (used.min_slice_auc, used.min_slice_examples) == (0.6, 40)
