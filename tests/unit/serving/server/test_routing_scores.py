"""Which answers count in the score histograms: one probability per row, from the only float output."""
from __future__ import annotations

import numpy as np

from serving.server.metrics import SCORE_BUCKETS, ServerMetrics, probabilities


def test_the_one_float_output_of_probabilities_is_the_score():
    np.testing.assert_array_equal(probabilities({"tip_probability": np.array([[0.2], [0.9]], np.float32)}),
                                  np.array([0.2, 0.9], np.float32))
    # Other outputs that are not floats (classes, ids) do not stop it.
    both = {"p": np.array([0.5, 0.25]), "classes": np.array([b"0", b"1"])}
    np.testing.assert_array_equal(probabilities(both), [0.5, 0.25])


def test_answers_that_are_no_probability_per_row_are_skipped():
    assert probabilities({"a": np.array([0.1]), "b": np.array([0.2])}) is None  # which one?
    assert probabilities({"logits": np.array([[-2.0], [3.5]])}) is None
    assert probabilities({"scores": np.array([[0.3, 0.7]])}) is None  # two classes per row
    assert probabilities({"p": np.array([np.nan])}) is None
    assert probabilities({"p": np.array([], np.float32)}) is None


def test_scores_land_in_buckets_005_apart_by_model_version_and_arm():
    assert SCORE_BUCKETS[0] == 0.05 and SCORE_BUCKETS[-1] == 1.0 and len(SCORE_BUCKETS) == 20
    metrics = ServerMetrics()
    metrics.observe_scores("taxi-tips", 7, "canary", {"tip_probability": np.array([[0.01], [0.07], [0.99]])})
    sample = metrics.registry.get_sample_value
    labels = {"model": "taxi-tips", "version": "7", "arm": "canary"}
    assert sample("model_server_prediction_score_bucket", {**labels, "le": "0.05"}) == 1
    assert sample("model_server_prediction_score_bucket", {**labels, "le": "0.1"}) == 2
    assert sample("model_server_prediction_score_count", labels) == 3
    metrics.shadow_call("taxi-tips", "8", "ok", {"tip_probability": np.array([0.5])})
    metrics.shadow_call("taxi-tips", "8", "dropped")
    assert sample("model_server_shadow_score_count", {"model": "taxi-tips", "version": "8"}) == 1
    dropped = {"model": "taxi-tips", "version": "8", "status": "dropped"}
    assert sample("model_server_shadow_requests_total", dropped) == 1
