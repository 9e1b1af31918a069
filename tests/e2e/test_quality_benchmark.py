"""benchmarks/quality_benchmark.py end to end on a small run: the table, the targets, Evaluator's agreement."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, SMALL_RUN_SETTINGS, shipped_lines, write_span

SCRIPT = REPO / "benchmarks" / "quality_benchmark.py"


def _benchmark(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_benchmark_runs_the_pipeline_and_prints_both_models_against_the_targets(tmp_path):
    write_span(tmp_path / "data", 1, shipped_lines(4)[:1501])
    settings = [arg for setting in [f"data_root={tmp_path / 'data'}", *SMALL_RUN_SETTINGS]
                for arg in ("--set", setting)]
    result = _benchmark("--run-pipeline", "--output-root", str(tmp_path / "out"), *settings,
                        "--json", str(tmp_path / "quality.json"), timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # One row per model-quality view, both models side by side, then every target judged.
    assert "model AUC  GBM AUC model cal  GBM cal" in out
    for row in ("overall", "payment_type=Credit Card"):
        assert any(line.startswith(row) for line in out.splitlines()), out
    targets = out.split("Targets (issue #20):")[1].strip().splitlines()
    assert len(targets) == 5 and all(line.strip().startswith(("met", "NOT MET")) for line in targets)
    measured = json.loads((tmp_path / "quality.json").read_text())
    # The model scored here is the one Evaluator scored: same AUC on the same rows.
    for name, values in measured["evaluator_agreement"].items():
        assert abs(values["evaluator"] - values["here"]) <= 1e-3, name
    overall = measured["slices"]["overall"]
    assert overall["pipeline model"]["examples"] == measured["eval_rows"] > 0
    assert 0.5 < overall["GBM baseline"]["auc"] <= 1.0
    assert {"fare_per_mile", "speed_mph", "day_of_week", "year"} <= set(measured["baseline_features"])


@pytest.mark.timeout(120)
def test_an_output_root_without_runs_is_a_clear_error(tmp_path):
    result = _benchmark("--output-root", str(tmp_path), timeout=110)
    assert result.returncode == 2
    assert "no ML Metadata store" in result.stderr and "--run-pipeline" in result.stderr
