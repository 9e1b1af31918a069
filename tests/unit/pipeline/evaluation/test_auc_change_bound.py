"""AUCChangeUpperBound: the number Evaluator's change threshold judges is the upper end of the written interval."""
from __future__ import annotations

import pytest
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.metrics import metric_specs, metric_types
from tensorflow_model_analysis.utils import config_util, math_util

from pipeline.config import PipelineConfig
from pipeline.evaluation import auc_change_bound, eval_config

CHANGE = types.ValueWithTDistribution(sample_mean=-0.003, sample_standard_deviation=0.004,
                                      sample_degrees_of_freedom=19, unsampled_value=-0.004)


def test_upper_bound_is_the_upper_end_tfma_writes():
    assert auc_change_bound.upper_bound(CHANGE) == pytest.approx(math_util.calculate_confidence_interval(CHANGE)[2])
    assert auc_change_bound.upper_bound(CHANGE) == pytest.approx(-0.003 + 0.004 * 2.093, abs=1e-4)


def test_without_an_interval_the_point_value_is_judged():
    assert auc_change_bound.upper_bound(-0.004) == -0.004
    assert auc_change_bound.interval(-0.004) is None
    no_spread = types.ValueWithTDistribution(sample_mean=-0.004, unsampled_value=-0.004)
    assert auc_change_bound.upper_bound(no_spread) == -0.004


def _computations(has_baseline: bool):
    config = config_util.update_eval_config_with_defaults(
        eval_config.eval_config(PipelineConfig()), has_baseline=has_baseline, rubber_stamp=not has_baseline)
    return [c for c in metric_specs.to_computations(config.metrics_specs, eval_config=config)
            if isinstance(c, metric_types.CIDerivedMetricComputation)], config


def test_computed_for_the_candidate_against_the_baseline_under_the_key_the_threshold_names():
    [computation], config = _computations(has_baseline=True)
    [key] = computation.keys
    assert (key.name, key.model_name, key.is_diff) == (auc_change_bound.NAME, "candidate", True)
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(config.metrics_specs, eval_config=config)
    assert key in thresholds, "TFMA's validator must find the change threshold under this key"
    auc_change = metric_types.MetricKey(name="auc", model_name="candidate", example_weighted=False, is_diff=True)
    assert computation.result({auc_change: CHANGE}) == {key: pytest.approx(auc_change_bound.upper_bound(CHANGE))}
    assert computation.result({}) == {}


def test_not_computed_on_a_first_run_without_baseline():
    computations, config = _computations(has_baseline=False)
    assert computations == []
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(config.metrics_specs, eval_config=config)
    assert not [key for key in thresholds if key.name == auc_change_bound.NAME]
