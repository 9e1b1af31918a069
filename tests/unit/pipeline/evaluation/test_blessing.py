"""Why Evaluator blessed a candidate or not, in words: slice names, gated slices, the deciding finding.

The evaluations are real Evaluator outputs in miniature: TFMA's own validator judges per-slice metrics
against the pipeline's EvalConfig, and the records are written as Evaluator writes them (see conftest).
"""
from __future__ import annotations

import math

import pytest
from tensorflow_model_analysis.slicer import slicer_lib

from pipeline.config import PipelineConfig
from pipeline.evaluation import blessing, outcome
from tests.unit.pipeline.conftest import write_evaluation

CONFIG = PipelineConfig()  # min_auc 0.7, max_auc_drop 0.0, min_slice_auc 0.55, min_slice_examples 50
OVERALL = ()
HOUR_7 = (("trip_start_hour", 7),)
CASH = (("payment_type", "Cash"),)
CARD = (("payment_type", "Credit Card"),)
FLASH = (("company", "Flash Cab"),)
SMALL_COMPANY = (("company", "Tiny Taxi"),)
CASH_AT_7 = (("payment_type", "Cash"), ("trip_start_hour", 7))


def row(auc, example_count=1000, mean_label=0.4, auc_diff=0.0, **intervals):
    return {"auc": auc, "example_count": example_count, "mean_label": mean_label, "auc_diff": auc_diff, **intervals}


def evaluation(overall=0.8, overall_diff=0.01, card=0.62, hour=0.7, flash=0.75, extra=None, **intervals) -> dict:
    """One slice of each slicing spec of the EvalConfig; cash trips hold one class only (AUC 0.0).

    `intervals`: auc_interval / auc_diff_interval of the overall slice, as Evaluator's jackknife gives them."""
    return {OVERALL: row(overall, 5000, 0.4, overall_diff, **intervals), HOUR_7: row(hour, 300),
            CASH: row(0.0, 3000, 0.0), CARD: row(card, 1700, 0.6), FLASH: row(flash, 400),
            CASH_AT_7: row(0.0, 120, 0.0), **(extra or {})}


def decided(tmp_path, rows, config=CONFIG) -> blessing.Decision:
    uri = tmp_path / "evaluation"
    write_evaluation(uri, rows, config)
    return blessing.decide(str(uri), outcome.metrics_table(str(uri)), config)


@pytest.mark.parametrize("key, name", [
    ((), "overall"),
    (CASH, "payment_type=Cash"),
    (HOUR_7, "trip_start_hour=7"),
    ((("trip_miles", 1.5),), "trip_miles=1.5"),
    (CASH_AT_7, "payment_type=Cash, trip_start_hour=7"),
])
def test_slice_name_reads_like_column_equals_value(key, name):
    assert blessing.slice_name(slicer_lib.serialize_slice_key(key)) == name


def test_gated_slices_are_those_with_enough_examples_of_each_class_and_never_overall():
    table = {
        "overall": {("auc", False): 0.8, ("example_count", False): 5000, ("mean_label", False): 0.4},
        "payment_type=Cash": {("auc", False): 0.0, ("example_count", False): 3000, ("mean_label", False): 0.0},
        "payment_type=Credit Card": {("auc", False): 0.6, ("example_count", False): 1700, ("mean_label", False): 0.6},
        "company=Tiny Taxi": {("auc", False): 0.2, ("example_count", False): 90, ("mean_label", False): 0.5},
        "company=No Count": {("auc", False): 0.2, ("mean_label", False): 0.5},  # a metric missing: not judged
    }
    assert blessing.gated_slices(table, CONFIG) == {"payment_type=Credit Card": 0.6}


def test_gated_slices_follow_the_configured_minimum_of_examples():
    table = {"company=Tiny Taxi": {("auc", False): 0.2, ("example_count", False): 90, ("mean_label", False): 0.5}}
    assert blessing.gated_slices(table, PipelineConfig(min_slice_examples=40)) == {"company=Tiny Taxi": 0.2}


def test_finding_reads_metric_slice_value_verdict_and_threshold():
    assert str(blessing.Finding("AUC", "overall", 0.81234, ">= 0.7 (min_auc)", True)) == \
        "AUC on overall = 0.8123 meets >= 0.7 (min_auc)"
    assert str(blessing.Finding("AUC", "payment_type=Credit Card", 0.5, ">= 0.55", False)) == \
        "AUC on payment_type=Credit Card = 0.5000 FAILS >= 0.55"


def test_blessed_candidate_names_the_closest_margin_first(tmp_path):
    decision = decided(tmp_path, evaluation(overall=0.9, overall_diff=0.05, card=0.56, hour=0.7, flash=0.8))
    assert decision.blessed
    assert str(decision.deciding) == ("AUC on payment_type=Credit Card (1700 examples; lowest of 3 gated slices) = "
                                      "0.5600 meets >= 0.55 (min_slice_auc, on slices with >= 50 examples of each "
                                      "class)")
    assert [f.metric for f in decision.findings] == ["AUC", "AUC (change vs baseline)", "AUC"]
    assert [f.passed for f in decision.findings] == [True, True, True]


def test_blessed_by_a_small_gain_over_the_baseline_names_the_change(tmp_path):
    decision = decided(tmp_path, evaluation(overall=0.9, overall_diff=0.001, card=0.7))
    assert decision.blessed
    assert decision.deciding.metric == "AUC (change vs baseline)"
    assert decision.deciding.value == pytest.approx(0.001)
    assert decision.deciding.threshold.endswith("(max_auc_drop 0.0)")


def test_first_candidate_without_a_baseline_is_judged_without_the_change(tmp_path):
    rows = {key: {k: v for k, v in values.items() if k != "auc_diff"} for key, values in evaluation().items()}
    decision = decided(tmp_path, rows)
    assert decision.blessed
    assert "AUC (change vs baseline)" not in [f.metric for f in decision.findings]
    assert str(decision.findings[-1]) == "AUC on overall = 0.8000 meets >= 0.7 (min_auc)"


def test_not_blessed_by_overall_auc_below_min_auc(tmp_path):
    decision = decided(tmp_path, evaluation(overall=0.65, overall_diff=0.02))
    assert not decision.blessed
    assert [str(f) for f in decision.findings] == ["AUC on overall = 0.6500 FAILS >= 0.7 (min_auc)"]


def test_not_blessed_by_a_drop_against_the_baseline(tmp_path):
    decision = decided(tmp_path, evaluation(overall=0.8, overall_diff=-0.02), PipelineConfig(max_auc_drop=0.01))
    assert not decision.blessed
    assert str(decision.deciding) == ("AUC (change vs baseline) on overall = -0.0200 FAILS >= -0.01 "
                                      "(max_auc_drop 0.01)")


def test_not_blessed_by_a_gated_slice_below_the_floor_names_slice_auc_and_size(tmp_path):
    decision = decided(tmp_path, evaluation(card=0.5))
    assert not decision.blessed
    assert [str(f) for f in decision.findings] == [
        "AUC on payment_type=Credit Card (1700 examples) = 0.5000 FAILS >= 0.55 (min_slice_auc, on slices with "
        ">= 50 examples of each class)"]


def test_several_failures_list_the_one_furthest_below_its_threshold_first(tmp_path):
    decision = decided(tmp_path, evaluation(overall=0.68, card=0.4, hour=0.5))
    assert not decision.blessed
    assert [(f.metric, f.slice.split(" (")[0]) for f in decision.findings] == [
        ("AUC", "payment_type=Credit Card"),  # 0.15 below the floor
        ("AUC", "trip_start_hour=7"),  # 0.05 below
        ("AUC", "overall"),  # 0.02 below min_auc
    ]


def test_slice_with_too_few_examples_of_one_class_is_not_gated(tmp_path):
    # 2,000 trips, 20 big tips: fewer than 50 of that class, so its low AUC is noise and not held to the floor.
    decision = decided(tmp_path, evaluation(card=0.6, extra={SMALL_COMPANY: row(0.2, 2000, 0.01)}))
    assert decision.blessed
    assert all("Tiny Taxi" not in f.slice for f in decision.findings)
    [floor] = [f for f in decision.findings if "gated" in f.slice]
    assert floor.slice == "payment_type=Credit Card (1700 examples; lowest of 3 gated slices)"


def test_failed_validation_without_a_per_slice_failure_still_gives_a_reason(tmp_path):
    rows = evaluation()
    del rows[FLASH]  # the EvalConfig slices by company: TFMA fails the validation for the missing slice
    decision = decided(tmp_path, rows)
    assert not decision.blessed
    assert decision.deciding.metric == "validation" and math.isnan(decision.deciding.value)
    assert "company" in decision.deciding.threshold, decision.deciding.threshold


def test_change_threshold_with_no_drop_allowed_reads_as_zero(tmp_path):
    decision = decided(tmp_path, evaluation(overall=0.8, overall_diff=-0.02))
    assert decision.deciding.threshold == ">= 0.0 (max_auc_drop 0.0)"


def test_values_read_with_their_intervals(tmp_path):
    decision = decided(tmp_path, evaluation(overall=0.8, overall_diff=0.03, auc_interval=(0.79, 0.81),
                                            auc_diff_interval=(0.02, 0.04)))
    assert decision.blessed
    findings = {f.metric: str(f) for f in decision.findings if f.slice == "overall"}
    assert findings["AUC"] == "AUC on overall = 0.8000 [0.7900, 0.8100] meets >= 0.7 (min_auc)"
    # A gain the whole interval shows: no word of doubt.
    assert findings[blessing.CHANGE] == ("AUC (change vs baseline) on overall = +0.0300 [+0.0200, +0.0400] meets "
                                         "upper end >= 0.0 (max_auc_drop 0.0, judged on the 95% interval)")


def test_a_dip_within_the_noise_is_blessed_and_called_inconclusive(tmp_path):
    # Below the baseline by 0.004, but the interval reaches above it: no evidence of a drop.
    decision = decided(tmp_path, evaluation(overall=0.8, overall_diff=-0.004, auc_diff_interval=(-0.012, 0.004)))
    assert decision.blessed
    assert str(decision.deciding) == (
        "AUC (change vs baseline) on overall = -0.0040 [-0.0120, +0.0040] meets upper end >= 0.0 (max_auc_drop "
        "0.0, judged on the 95% interval); inconclusive: the interval also holds drops below 0.0, but does not "
        "show one")


def test_a_point_drop_beyond_max_auc_drop_is_not_enough_to_block(tmp_path):
    # A point-value threshold would block this one (-0.02 < -0.01); the interval does not show the drop.
    decision = decided(tmp_path, evaluation(overall_diff=-0.02, auc_diff_interval=(-0.035, -0.005)),
                       PipelineConfig(max_auc_drop=0.01))
    assert decision.blessed
    assert decision.deciding.metric == blessing.CHANGE and decision.deciding.margin == pytest.approx(0.005)


def test_a_drop_the_whole_interval_shows_blocks_and_names_the_interval(tmp_path):
    decision = decided(tmp_path, evaluation(overall_diff=-0.02, auc_diff_interval=(-0.03, -0.011)),
                       PipelineConfig(max_auc_drop=0.01))
    assert not decision.blessed
    assert [str(f) for f in decision.findings] == [
        "AUC (change vs baseline) on overall = -0.0200 [-0.0300, -0.0110] FAILS upper end >= -0.01 "
        "(max_auc_drop 0.01, judged on the 95% interval)"]
