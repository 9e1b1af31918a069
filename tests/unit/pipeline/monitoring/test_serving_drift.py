"""Serving drift as people read it (the monitor's line) and as the trigger policy uses it."""
from __future__ import annotations

import pytest

from pipeline.config import PipelineConfig
from pipeline.data_validation.drift import JENSEN_SHANNON, L_INFINITY, Distance
from pipeline.monitoring import triggers
from pipeline.monitoring.serving_drift import ServingDrift, not_measured

pytestmark = [pytest.mark.timeout(60)]


def _distance(feature: str, value: float | None, threshold: float, comparator: str = JENSEN_SHANNON) -> Distance:
    return Distance("skew", feature, comparator, value, threshold, "the window's requests", "version 7's training data",
                    exceeded=value is not None and value > threshold)


MEASURED = ServingDrift(7, 1200, [
    _distance("pickup_latitude", 0.25, 0.3),  # the largest value, but well inside its threshold
    _distance("company", 0.2, 0.12, L_INFINITY),  # the furthest past its own threshold
    _distance("fare", 0.16, 0.15),
    _distance("pickup_census_tract", None, 0.15)])


def test_the_line_counts_features_over_threshold_and_names_the_one_furthest_past_it():
    assert MEASURED.summary() == (
        "serving drift: 2 of 4 features over threshold (largest: company 0.200 > 0.12); 1 not measurable "
        "(no values on one side); 1200 logged rows against version 7's training data")
    quiet = ServingDrift(7, 50, [_distance("fare", 0.01, 0.15), _distance("company", 0.031, 0.1, L_INFINITY)])
    assert quiet.summary() == ("serving drift: 0 of 2 features over threshold (largest: company 0.031 <= 0.1); "
                               "50 logged rows against version 7's training data")


def test_drift_over_threshold_is_a_trigger_reason_per_feature_when_trigger_on_serving_drift_is_on():
    reasons, notes = triggers.drift_reasons(MEASURED, PipelineConfig())
    assert [str(r) for r in reasons] == [
        "serving drift = 0.2000 > L-infinity threshold 0.12 on company (version 7)",
        "serving drift = 0.1600 > Jensen-Shannon divergence threshold 0.15 on fare (version 7)"]
    assert notes == []
    assert triggers.decide(reasons, notes, None, PipelineConfig()).fire


def test_with_trigger_on_serving_drift_off_drift_is_reported_but_starts_nothing():
    assert triggers.drift_reasons(MEASURED, PipelineConfig(trigger_on_serving_drift=False)) == ([], [])


def test_a_trigger_on_drift_that_is_not_measured_says_so():
    assert triggers.drift_reasons(None, PipelineConfig()) == (
        [], ["serving drift not judged: monitor_serving_drift is off"])
    nothing = not_measured("no tf.Example request logged in the window")
    assert triggers.drift_reasons(nothing, PipelineConfig()) == ([], [])
    assert nothing.as_dict()["features"] == [] and "not measured" in nothing.as_dict()["summary"]
