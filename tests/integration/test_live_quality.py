"""Live quality with the real TFMA: per version, label and slice, with the Evaluator's definitions."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.monitoring import live_quality
from pipeline.monitoring.logged_predictions import LABEL, PREDICTION, VERSION, VERSION_LABEL


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 4000
    label = rng.integers(0, 2, n)
    version = np.where(np.arange(n) < 2000, 1, 2)
    card = rng.random(n) < 0.5
    # Version 1 ranks card trips backwards; cash trips never tip big (one class: AUC undefined there).
    score = np.where(version == 2, label * 0.6 + rng.random(n) * 0.4, np.where(card, 1 - label, label) * 0.5 + 0.25)
    label = np.where(card, label, 0)
    rows = pd.DataFrame({
        PREDICTION: score.astype(np.float32), LABEL: label, VERSION: version,
        VERSION_LABEL: np.where(np.arange(n) % 2 == 0, "stable", "-"),
        "payment_type": np.where(card, "Credit Card", "Cash"),
        "trip_start_hour": rng.integers(0, 24, n),
        "company": np.where(rng.random(n) < 0.1, None, "Flash Cab").astype(object)})
    return rows, live_quality.compute(rows, str(tmp_path_factory.mktemp("tfma")))


def _find(qualities, version, name, version_label=None):
    return next(q for q in qualities if q.version == version and q.slice == name and q.version_label == version_label)


def test_auc_per_version_and_slice_equals_a_direct_computation(measured):
    rows, qualities = measured
    for version in (1, 2):
        mine = rows[(rows[VERSION] == version) & (rows.payment_type == "Credit Card")]
        quality = _find(qualities, version, "payment_type=Credit Card")
        assert quality.metrics["auc"] == pytest.approx(roc_auc_score(mine[LABEL], mine[PREDICTION]), abs=2e-3)
        assert quality.count == len(mine)
    assert _find(qualities, 1, "payment_type=Credit Card").metrics["auc"] < 0.1
    assert _find(qualities, 2, "payment_type=Credit Card").metrics["auc"] > 0.9


def test_labels_split_a_version_and_one_class_slices_are_not_gated(measured):
    rows, qualities = measured
    stable = _find(qualities, 2, "overall", "stable")
    assert stable.count == ((rows[VERSION] == 2) & (rows[VERSION_LABEL] == "stable")).sum()
    cash = _find(qualities, 1, "payment_type=Cash")
    assert not cash.gated(50) and _find(qualities, 1, "payment_type=Credit Card").gated(50)
    assert "recall" not in cash.metrics  # no big tip to recall: n/a, not NaN


def test_rows_without_a_slice_feature_get_their_own_slice_which_is_never_gated(measured):
    rows, qualities = measured
    missing = _find(qualities, 2, "company=(missing)")
    assert missing.missing and not missing.gated(1)
    assert missing.count == ((rows[VERSION] == 2) & rows.company.isna()).sum()
