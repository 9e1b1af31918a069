"""Canary against stable at one release step: a statistical test per metric, not point values.

Each check answers "is the canary worse than stable, by more than we tolerate, beyond
what chance explains?" A check fails only when both hold: the difference passes its
threshold (material) and the test rejects "no worse" at `alpha` (significant). With
fewer samples than it needs, a check says so instead of passing or failing: that is a
reason to hold, never to promote.

The tests (scipy and scikit-learn; written here because no release library judges
TF Serving traffic):
- error rate: Fisher's exact test, one-sided (canary's errors more frequent);
- p99 latency: the bootstrap distribution of the ratio canary p99 / stable p99;
- score distribution: the population stability index (PSI) of the canary's predicted
  probabilities against stable's, over the model server's score buckets (0.05 wide), with
  a chi-square test of homogeneity on the same bucket counts (the routing splits one
  population of requests, so a difference is the model's). Not Kolmogorov-Smirnov: most
  scores sit near 0 (cash trips), where a retrained model's 0.001 against 0.002 is a large
  gap between the two distribution functions and no difference to anyone;
- agreement: the share of rows where the shadowed canary and the serving stable answer
  take the same decision at 0.5, against a floor, with a Wilson interval;
- live AUC: the bootstrap interval of canary AUC - stable AUC on requests whose
  outcomes have arrived.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

PASS, FAIL, TOO_FEW = "pass", "fail", "not enough data"
BOOTSTRAP_ROUNDS = 400


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The release's tolerances (PipelineConfig's release_* settings)."""
    min_requests: int = 300  # requests per arm before the error rate is judged
    max_error_increase: float = 0.01  # canary error rate - stable error rate
    max_p99_ratio: float = 1.5  # canary p99 latency / stable p99 latency
    max_score_shift: float = 0.2  # population stability index of the canary's scores against stable's
    min_agreement: float = 0.9  # share of rows where canary and stable decide alike
    max_live_auc_drop: float = 0.02  # stable live AUC - canary live AUC
    min_outcomes: int = 200  # labelled rows per arm before live AUC is judged
    alpha: float = 0.01  # significance level of every test


@dataclasses.dataclass(frozen=True)
class Check:
    metric: str
    verdict: str  # PASS, FAIL or TOO_FEW
    canary: float | None
    stable: float | None
    value: float | None  # what the threshold applies to (difference, ratio, distance, share)
    threshold: str
    p_value: float | None
    samples: tuple[int, int]  # (canary, stable)

    def __str__(self) -> str:
        def number(x):
            return "n/a" if x is None else f"{x:.4g}"
        text = (f"{self.metric}: canary {number(self.canary)}, stable {number(self.stable)}; "
                f"{number(self.value)} vs {self.threshold}")
        if self.p_value is not None:
            text += f", p = {self.p_value:.2g}"
        return f"{text} (n = {self.samples[0]}/{self.samples[1]}) -> {self.verdict}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def error_rate(canary_errors: int, canary_requests: int, stable_errors: int, stable_requests: int,
               limits: Thresholds) -> Check:
    samples = (canary_requests, stable_requests)
    threshold = f"<= +{limits.max_error_increase:g} (canary - stable error rate)"
    if min(samples) < limits.min_requests:
        return Check("error rate", TOO_FEW, None, None, None, threshold, None, samples)
    canary, stable = canary_errors / canary_requests, stable_errors / stable_requests
    table = [[canary_errors, canary_requests - canary_errors], [stable_errors, stable_requests - stable_errors]]
    p_value = float(stats.fisher_exact(table, alternative="greater")[1])
    worse = canary - stable > limits.max_error_increase and p_value < limits.alpha
    return Check("error rate", FAIL if worse else PASS, canary, stable, canary - stable, threshold, p_value, samples)


def _p99(values: np.ndarray) -> float:
    return float(np.quantile(values, 0.99))


def p99_latency(canary: np.ndarray, stable: np.ndarray, limits: Thresholds, seed: int = 0) -> Check:
    samples = (len(canary), len(stable))
    threshold = f"<= {limits.max_p99_ratio:g}x (canary / stable p99)"
    if min(samples) < 100:  # a 99th percentile of fewer than 100 calls is the maximum
        return Check("p99 latency", TOO_FEW, None, None, None, threshold, None, samples)
    ratio = _p99(canary) / max(_p99(stable), 1e-9)
    random = np.random.default_rng(seed)
    ratios = np.array([_p99(random.choice(canary, len(canary))) / max(_p99(random.choice(stable, len(stable))), 1e-9)
                       for _ in range(BOOTSTRAP_ROUNDS)])
    # The share of resamples in which the canary is within the tolerance: a one-sided bootstrap p-value.
    p_value = float((np.sum(ratios <= limits.max_p99_ratio) + 1) / (BOOTSTRAP_ROUNDS + 1))
    worse = ratio > limits.max_p99_ratio and p_value < limits.alpha
    return Check("p99 latency", FAIL if worse else PASS, _p99(canary), _p99(stable), ratio, threshold, p_value,
                 samples)


SCORE_BUCKETS = np.linspace(0.0, 1.0, 21)  # the model server's model_server_prediction_score buckets


def stability_index(canary: np.ndarray, stable: np.ndarray) -> float:
    """PSI = sum over buckets of (c - s) * ln(c / s) of the two shares, each bucket's count + 0.5 (so an
    empty bucket on one side is a large term, not an infinite one)."""
    shares = [(np.histogram(np.clip(x, 0, 1), SCORE_BUCKETS)[0] + 0.5) for x in (canary, stable)]
    c, s = (counts / counts.sum() for counts in shares)
    return float(np.sum((c - s) * np.log(c / s)))


def score_shift(canary: np.ndarray, stable: np.ndarray, limits: Thresholds) -> Check:
    samples = (len(canary), len(stable))
    threshold = f"<= {limits.max_score_shift:g} (population stability index)"
    if min(samples) < limits.min_requests:
        return Check("score distribution", TOO_FEW, None, None, None, threshold, None, samples)
    index = stability_index(canary, stable)
    counts = np.array([np.histogram(np.clip(x, 0, 1), SCORE_BUCKETS)[0] for x in (canary, stable)])
    counts = counts[:, counts.sum(axis=0) > 0]  # buckets neither arm used carry no evidence
    p_value = float(stats.chi2_contingency(counts)[1]) if counts.shape[1] > 1 else 1.0
    worse = index > limits.max_score_shift and p_value < limits.alpha
    return Check("score distribution", FAIL if worse else PASS, float(np.mean(canary)), float(np.mean(stable)),
                 index, threshold, p_value, samples)


def _wilson_upper(agree: int, total: int, alpha: float) -> float:
    z = stats.norm.ppf(1 - alpha)
    share = agree / total
    centre = share + z * z / (2 * total)
    spread = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return min(1.0, (centre + spread) / (1 + z * z / total))


def agreement(canary: np.ndarray, stable: np.ndarray, limits: Thresholds) -> Check:
    """`canary` and `stable`: the two answers to the same rows (shadow and serving)."""
    rows = len(canary)
    threshold = f">= {limits.min_agreement:g} (same decision at 0.5)"
    if rows < limits.min_requests:
        return Check("agreement", TOO_FEW, None, None, None, threshold, None, (rows, rows))
    agree = int(np.sum((canary >= 0.5) == (stable >= 0.5)))
    share = agree / rows
    # Fails only when even the interval's upper end is under the floor.
    upper = _wilson_upper(agree, rows, limits.alpha)
    p_value = float(stats.binomtest(agree, rows, limits.min_agreement, alternative="less").pvalue)
    worse = upper < limits.min_agreement
    return Check("agreement", FAIL if worse else PASS, float(np.mean(canary >= 0.5)), float(np.mean(stable >= 0.5)),
                 share, threshold, p_value, (rows, rows))


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    # Mann-Whitney's U over the class sizes, ties counted half: the AUC TFMA and scikit-learn report.
    ranks = stats.rankdata(scores)
    positives = labels == 1
    count_pos, count_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - count_pos * (count_pos + 1) / 2) / (count_pos * count_neg))


def _both_classes(labels: np.ndarray) -> bool:
    return 0 < int(labels.sum()) < len(labels)


def live_auc(canary: tuple[np.ndarray, np.ndarray], stable: tuple[np.ndarray, np.ndarray], limits: Thresholds,
             seed: int = 0) -> Check:
    """`canary`, `stable`: (labels, scores) of each arm's requests whose outcomes arrived."""
    samples = (len(canary[0]), len(stable[0]))
    threshold = f">= -{limits.max_live_auc_drop:g} (canary - stable live AUC)"
    if (min(samples) < limits.min_outcomes or not _both_classes(canary[0]) or not _both_classes(stable[0])):
        return Check("live AUC", TOO_FEW, None, None, None, threshold, None, samples)
    canary_auc, stable_auc = _auc(*canary), _auc(*stable)
    random = np.random.default_rng(seed)
    differences = []
    for _ in range(BOOTSTRAP_ROUNDS):
        picks = [random.integers(0, len(arm[0]), len(arm[0])) for arm in (canary, stable)]
        resampled = [(arm[0][pick], arm[1][pick]) for arm, pick in zip((canary, stable), picks)]
        if all(_both_classes(labels) for labels, _ in resampled):
            differences.append(_auc(*resampled[0]) - _auc(*resampled[1]))
    # One-sided bootstrap p-value of "the canary is no worse".
    p_value = float((np.sum(np.array(differences) >= 0) + 1) / (len(differences) + 1))
    worse = stable_auc - canary_auc > limits.max_live_auc_drop and p_value < limits.alpha
    return Check("live AUC", FAIL if worse else PASS, canary_auc, stable_auc, canary_auc - stable_auc,
                 threshold, p_value, samples)
