"""Smoke run of benchmarks/monitor_benchmark.py at 20,000 rows: every phase runs, the table is printed,
the monitor and the floor give the same metrics. No timing is asserted (the cores are shared)."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow]


@pytest.mark.timeout(900)
def test_benchmark_prints_the_table_and_the_metrics_agree(tmp_path):
    summary = tmp_path / "summary.json"
    process = subprocess.run(
        [sys.executable, "benchmarks/monitor_benchmark.py", "--rows", "20000", "--work", str(tmp_path / "work"),
         "--json", str(summary)],
        cwd=REPO, capture_output=True, text=True, timeout=880)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    out = process.stdout
    assert re.search(r"^rows logged in the window +20,000$", out, re.M), out[-3000:]
    assert re.search(r"^rows joined \(with an outcome\) +(\S+) \(floor \1, expected \1\)$", out, re.M), out[-3000:]
    ratio = re.search(r"^ratio monitor/floor +([\d.]+) wall, ([\d.]+) CPU$", out, re.M)
    assert ratio and math.isfinite(float(ratio.group(1))) and float(ratio.group(1)) > 0, out[-3000:]
    assert re.search(r"^peak RSS window-only/3x log +[\d.]+ / [\d.]+ GiB \(ratio [\d.]+\)", out, re.M)
    assert re.search(r"^3x log gives the same metrics +yes ", out, re.M)
    assert re.search(r"^metrics agree: yes ", out, re.M), out[-3000:]
    results = json.loads(summary.read_text())
    assert results["metrics_agree"] and math.isfinite(results["ratio_wall"])
    assert results["monitor"]["labelled"] == results["floor"]["labelled"] == results["build"]["labelled"] > 15_000
