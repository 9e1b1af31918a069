"""The trigger policy: which live measurements start a run, and what holds one back."""
from pipeline.config import PipelineConfig
from pipeline.monitoring import triggers
from pipeline.monitoring.live_quality import SliceQuality


def _quality(version: int, name: str, auc: float, count: int = 400, mean_label: float = 0.5) -> SliceQuality:
    return SliceQuality(version, None, name, {"auc": auc, "example_count": count, "mean_label": mean_label})


def _config(**changes) -> PipelineConfig:
    return PipelineConfig(**{"monitor_min_outcomes": 200, "min_slice_examples": 50, "live_min_slice_auc": 0.55,
                             "live_max_auc_drop": 0.05, **changes})


def test_a_gated_slice_below_the_floor_is_a_reason_naming_slice_value_and_threshold():
    qualities = [_quality(3, "overall", 0.9), _quality(3, "payment_type=Credit Card", 0.41),
                 _quality(3, "company=Tiny Cab", 0.2, count=60, mean_label=0.1)]  # 6 positives: not gated
    reasons, notes = triggers.quality_reasons(qualities, {3: 0.91}, {3: 1000}, _config())
    assert [str(r) for r in reasons] == [
        "slice AUC = 0.4100 < live_min_slice_auc 0.55 on payment_type=Credit Card (version 3)"]
    assert notes == []


def test_overall_auc_far_below_the_offline_auc_is_a_reason():
    reasons, _ = triggers.quality_reasons([_quality(3, "overall", 0.80)], {3: 0.90}, {3: 1000}, _config())
    assert reasons[0].kind == "AUC drop" and "offline 0.9000" in str(reasons[0])
    reasons, _ = triggers.quality_reasons([_quality(3, "overall", 0.87)], {3: 0.90}, {3: 1000}, _config())
    assert reasons == []


def test_a_version_with_too_few_outcomes_is_not_judged_and_says_so():
    reasons, notes = triggers.quality_reasons([_quality(3, "payment_type=Cash", 0.1)], {}, {3: 199}, _config())
    assert reasons == []
    assert notes == ["version 3: 199 outcomes joined, fewer than monitor_min_outcomes=200; its quality is not judged"]


def test_cooldown_holds_a_trigger_and_no_reason_is_quiet():
    reason = triggers.Reason("slice AUC", 3, "overall", 0.4, "< 0.55")
    assert triggers.decide([reason], [], None, _config()).fire
    assert triggers.decide([reason], [], 7 * 3600, _config(trigger_cooldown_hours=6)).fire
    held = triggers.decide([reason], [], 3600, _config(trigger_cooldown_hours=6))
    assert held.verdict == triggers.HELD and "within trigger_cooldown_hours=6" in held.summary()
    assert triggers.decide([], ["a note"], None, _config()).verdict == triggers.QUIET
