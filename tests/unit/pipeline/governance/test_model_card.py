"""The model card's slice table: intervals where they mean something, words where AUC is undefined,
and the tiny slices in one row."""
from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.evaluation.intervals import Estimate
from pipeline.governance import model_card

CONFIG = PipelineConfig()  # min_slice_examples 50


def row(auc, count, mean_label, **more):
    return {("auc", False): auc, ("example_count", False): count, ("mean_label", False): mean_label,
            **{(name, False): value for name, value in more.items()}}


TABLE = {
    "overall": {**row(Estimate(0.9412, (0.9371, 0.9450)), 4966, 0.4, precision=0.7, recall=0.8, calibration=1.01),
                ("auc", True): Estimate(-0.0040, (-0.0120, 0.0041))},
    "payment_type=Credit Card": {**row(Estimate(0.6088, (0.58, 0.64)), 1701, 0.6, calibration=0.98),
                                 ("auc", True): Estimate(0.02, (0.01, 0.03))},
    # Cash tips are not recorded: one class, TFMA's AUC 0.0 and calibration NaN mean nothing.
    "payment_type=Cash": {**row(Estimate(0.0, (0.0, 0.0)), 3234, 0.0, calibration=float("nan"), recall=float("nan")),
                          ("auc", True): Estimate(0.0)},
    "company=Medium Cab": row(Estimate(0.7012, (0.5, 0.9)), 300, 0.05),  # 15 big tips: too few for an interval
    "company=Tiny Cab": row(0.0, 12, 0.0),
    "payment_type=Cash, trip_start_hour=3": row(1.0, 7, 0.3),
}


def test_gated_slices_show_intervals_and_undefined_auc_reads_as_such():
    lines = model_card.slice_table(TABLE, CONFIG)
    assert lines[0].startswith("| slice | examples | AUC [95% interval] | vs baseline [95% interval] |")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert rows["overall"] == ("| overall | 4966 | 0.9412 [0.9371, 0.9450] | -0.0040 [-0.0120, +0.0041] | 0.7000 | "
                               "0.8000 | 1.0100 |  |")
    assert rows["payment_type=Credit Card"].startswith(
        "| payment_type=Credit Card | 1701 | 0.6088 [0.5800, 0.6400] | +0.0200 [+0.0100, +0.0300] |")
    assert rows["payment_type=Credit Card"].endswith("| yes |")
    assert rows["payment_type=Cash"] == ("| payment_type=Cash | 3234 | undefined (one class) |  |  | undefined | "
                                         "undefined |  |")
    assert rows["company=Medium Cab"].startswith(
        "| company=Medium Cab | 300 | 0.7012 (no interval: fewer than 50 examples of each class) |")
    assert "0.0000" not in "".join(lines) and "nan" not in "".join(lines).lower()


def test_slices_with_fewer_examples_than_the_minimum_are_one_row():
    lines = model_card.slice_table(TABLE, CONFIG)
    assert not [line for line in lines if "Tiny Cab" in line or "trip_start_hour=3" in line]
    assert lines[-1] == "| 2 slices with < 50 examples | 7 to 12 each | not shown: too few examples | | | | | |"
    assert [line.split(" | ")[0] for line in lines[2:5]] == ["| overall", "| payment_type=Credit Card",
                                                             "| company=Medium Cab"]
