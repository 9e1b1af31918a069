"""How metric values read with their intervals, and which slices get none."""
from __future__ import annotations

import copy
import pickle

import pytest

from pipeline.evaluation import intervals
from pipeline.evaluation.intervals import Estimate


def test_a_value_reads_with_its_interval():
    assert intervals.text(Estimate(0.94123, (0.93712, 0.94504))) == "0.9412 [0.9371, 0.9450]"
    assert intervals.text(Estimate(-0.004, (-0.012, 0.0041)), signed=True) == "-0.0040 [-0.0120, +0.0041]"
    assert intervals.text(Estimate(0.9412, (0.93, 0.95)), with_interval=False) == "0.9412"


def test_a_value_without_interval_reads_alone_and_an_undefined_one_says_so():
    assert intervals.text(0.61) == "0.6100"
    assert intervals.text(Estimate(0.61)) == "0.6100"
    assert intervals.text(float("nan")) == "undefined"
    assert intervals.text(float("inf")) == "undefined"
    assert intervals.text(None) == ""


def test_an_estimate_is_its_value_and_keeps_its_interval_when_copied():
    value = Estimate(0.8, (0.79, 0.81))
    assert value == 0.8 and value - 0.1 == pytest.approx(0.7)
    assert copy.deepcopy(value).interval == (0.79, 0.81)
    assert pickle.loads(pickle.dumps(value)).interval == (0.79, 0.81)


@pytest.mark.parametrize("count, mean_label, one_class, meaningful", [
    (3234, 0.0, True, False),   # cash trips: no big tip recorded
    (60, 1.0, True, False),     # every trip a big tip
    (3234, 0.01, False, False),  # 32 big tips: both classes, too few for an interval
    (1701, 0.6, False, True),   # credit-card trips
])
def test_which_slices_have_an_auc_and_a_meaningful_interval(count, mean_label, one_class, meaningful):
    assert intervals.one_class(count, mean_label) is one_class
    assert intervals.meaningful(count, mean_label, 50) is meaningful
