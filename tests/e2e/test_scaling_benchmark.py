"""Smoke run of benchmarks/scaling_benchmark.py: tiny span, one Beam profile, few train steps.

Checks what a user reads from the benchmark: every stage timed, the floor measured, the
pipeline / floor ratio printed and saved, and the plot written.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from benchmarks.scaling_benchmark import DATA_STAGES, HEAVY_STAGES, MODEL_STAGES
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_benchmark_times_every_stage_and_prints_floor_ratios(tmp_path):
    result_path, plot_path = tmp_path / "scaling.json", tmp_path / "scaling.png"
    process = subprocess.run(
        [sys.executable, "benchmarks/scaling_benchmark.py", "--sizes", "2000", "--profiles", "in_memory",
         "--train-steps", "20", "--eval-steps", "5", "--work", str(tmp_path / "work"),
         "--json", str(result_path), "--plot", str(plot_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]

    results = json.loads(result_path.read_text())
    run = results["pipeline"]["in_memory"]["2000"]
    for stage in DATA_STAGES + MODEL_STAGES:
        # Every stage timed, even those that print "done in 0.0 s" at 2,000 rows.
        assert stage in run["stages"], stage
        # The table row: profile, rows, stage, wall s, CPU s, rows/s, peak GiB.
        assert re.search(rf"^in_memory +2,000 {stage} +[\d.]+ +[\d.]+ +[\d,]+ +[\d.]+$", process.stdout, re.M), stage
    for stage in HEAVY_STAGES + MODEL_STAGES:
        assert run["stages"][stage] > 0, stage
    # Where the time goes is measured in CPU seconds too (robust to other jobs on the machine).
    assert run["stage_cpu_s"]["Transform"] > 0 and run["stage_cpu_s"]["Trainer"] > 0
    assert run["peak_gib"] > 0
    floor = results["floor"]["2000"]["stages"]
    assert floor["floor_statistics"] > 0 and floor["floor_transform"] > 0
    for metric in ("wall", "cpu"):
        ratios = results["summary"]["floor_ratios"][metric]["in_memory"]["2000"]
        assert ratios["data stages / floor"] > 0 and ratios["Transform / floor_transform"] > 0
    assert "data stages / floor = " in process.stdout
    assert plot_path.stat().st_size > 10_000
