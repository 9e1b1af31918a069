"""The release's checks: each fails only on a material and significant difference, and says why."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.release import analysis
from pipeline.release.release import ReleaseError, _verdict, parse_steps
from pipeline.release.release_record import ABORT, ADVANCE, HOLD, PROMOTE

LIMITS = analysis.Thresholds(min_requests=300, min_outcomes=200)
pytestmark = pytest.mark.timeout(60)


def _scores(seed, n=2000, shift=0.0):
    return np.clip(np.random.default_rng(seed).beta(2, 5, n) + shift, 0, 1)


def test_error_rate_fails_only_when_worse_beyond_threshold_and_chance():
    same = analysis.error_rate(3, 1000, 2, 1000, LIMITS)
    assert same.verdict == analysis.PASS
    worse = analysis.error_rate(60, 1000, 2, 1000, LIMITS)
    assert worse.verdict == analysis.FAIL and worse.value == pytest.approx(0.058) and worse.p_value < 1e-6
    assert "error rate: canary 0.06, stable 0.002" in str(worse) and "<= +0.01" in str(worse)
    # Material but not significant on a small sample.
    assert analysis.error_rate(2, 300, 0, 300, LIMITS).verdict == analysis.PASS
    assert analysis.error_rate(0, 299, 0, 5000, LIMITS).verdict == analysis.TOO_FEW


def test_score_shift_is_a_stability_index_with_a_chi_square_test():
    assert analysis.score_shift(_scores(1), _scores(2), LIMITS).verdict == analysis.PASS
    shifted = analysis.score_shift(_scores(1, shift=0.25), _scores(2), LIMITS)
    assert shifted.verdict == analysis.FAIL and shifted.value > 1 and shifted.metric == "score distribution"
    assert "population stability index" in str(shifted)
    # A significant but small shift is tolerated.
    small = analysis.score_shift(_scores(1, n=20000, shift=0.02), _scores(2, n=20000), LIMITS)
    assert small.p_value < LIMITS.alpha and small.verdict == analysis.PASS
    # Most mass near 0 moving by a thousandth is no shift (Kolmogorov-Smirnov would call it one).
    near_zero = np.random.default_rng(7).random(3000) * 0.002
    assert analysis.score_shift(near_zero + 0.001, near_zero, LIMITS).value < 0.01
    assert analysis.score_shift(_scores(1, n=100), _scores(2), LIMITS).verdict == analysis.TOO_FEW
    # The index itself: identical shares give 0, and it is symmetric.
    assert analysis.stability_index(_scores(1), _scores(1)) == 0
    assert analysis.stability_index(_scores(1), _scores(2, shift=0.1)) == pytest.approx(
        analysis.stability_index(_scores(2, shift=0.1), _scores(1)))


def test_agreement_on_the_same_rows():
    stable = _scores(3)
    assert analysis.agreement(stable.copy(), stable, LIMITS).value == 1.0
    flipped = stable.copy()
    flipped[:600] = 1 - flipped[:600]  # 30% of rows decided the other way, at most
    result = analysis.agreement(flipped, stable, LIMITS)
    assert result.verdict == analysis.FAIL and result.value < 0.9


def test_p99_latency_ratio_by_bootstrap():
    random = np.random.default_rng(4)
    stable = random.gamma(2, 0.005, 2000)
    assert analysis.p99_latency(random.gamma(2, 0.005, 2000), stable, LIMITS).verdict == analysis.PASS
    slow = analysis.p99_latency(random.gamma(2, 0.005, 2000) * 3, stable, LIMITS)
    assert slow.verdict == analysis.FAIL and slow.value > 2
    assert analysis.p99_latency(stable[:50], stable, LIMITS).verdict == analysis.TOO_FEW


def test_live_auc_matches_scikit_learn_and_fails_a_worse_model():
    random = np.random.default_rng(5)
    labels = random.integers(0, 2, 1000)
    good = np.clip(labels * 0.4 + random.random(1000) * 0.6, 0, 1)
    assert analysis._auc(labels, good) == pytest.approx(roc_auc_score(labels, good), abs=1e-12)
    ties = np.round(good, 1)
    assert analysis._auc(labels, ties) == pytest.approx(roc_auc_score(labels, ties), abs=1e-12)
    worse = random.random(1000)
    result = analysis.live_auc((labels, worse), (labels, good), LIMITS)
    assert result.verdict == analysis.FAIL and result.value < -0.2
    assert analysis.live_auc((labels, good), (labels, good), LIMITS).verdict == analysis.PASS
    assert analysis.live_auc((labels[:100], good[:100]), (labels, good), LIMITS).verdict == analysis.TOO_FEW


def test_verdicts():
    passing = analysis.Check("error rate", analysis.PASS, 0, 0, 0, "", 1.0, (500, 500))
    shift = analysis.Check("score distribution", analysis.PASS, 0, 0, 0, "", 1.0, (500, 500))
    too_few = analysis.Check("live AUC", analysis.TOO_FEW, None, None, None, "", None, (3, 3))
    assert _verdict([passing, shift, too_few], 25)[0] == ADVANCE
    assert _verdict([passing, shift, too_few], 100)[0] == PROMOTE
    failing = analysis.Check("error rate", analysis.FAIL, 0.1, 0, 0.1, "<= +0.01", 1e-9, (500, 500))
    verdict, reason = _verdict([failing, shift], 5)
    assert verdict == ABORT and reason.startswith("error rate: canary 0.1")
    missing = analysis.Check("score distribution", analysis.TOO_FEW, None, None, None, "", None, (10, 500))
    assert _verdict([passing, missing], 5)[0] == HOLD


def test_steps_are_checked():
    assert parse_steps("5, 25,50,100") == (5, 25, 50, 100)
    for bad in ("5,25", "50,25,100", "0,100", "five"):
        with pytest.raises(ReleaseError, match="release steps"):
            parse_steps(bad)
