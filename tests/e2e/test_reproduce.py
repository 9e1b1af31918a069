"""Reproducible runs end to end: a pushed version trained again from its record, its metrics side by side,
and `compare` shows what differs between two runs.
"""
from __future__ import annotations

import contextlib
import io
import pathlib

import pytest

from pipeline.cli import main as cli
from pipeline.config import load_config
from pipeline.governance import reproduce
from pipeline.runners.local_runner import run_local
from tests.conftest import SMALL_RUN_SETTINGS, shipped_lines, write_span

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _cli(home: pathlib.Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*args, "--set", f"output_root={home / 'out'}", "--set", f"data_root={home / 'data'}",
                         *[item for setting in SMALL_RUN_SETTINGS for item in ("--set", setting)]])
    return code, out.getvalue()


def _run(home: pathlib.Path, *extra: str):
    config = load_config(None, [f"output_root={home / 'out'}", f"data_root={home / 'data'}", *SMALL_RUN_SETTINGS,
                                *extra])
    out = io.StringIO()
    result = run_local(config, out=out)
    assert result.succeeded, out.getvalue()
    return result


def _metric_table(output: str) -> dict[str, tuple[float, float]]:
    """{metric label: (recorded, reproduced)} from reproduce's side-by-side lines."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["metric", "recorded"])
    table = {}
    for line in lines[header + 1:]:
        words = line.split()
        if not words or words[-1] not in ("ok", "OUTSIDE"):
            break
        # label words, recorded, reproduced, difference, verdict
        table[" ".join(words[:-4])] = (float(words[-4]), float(words[-3]))
    return table


def _versions(home: pathlib.Path) -> list[str]:
    return sorted(p.name for p in (home / "out" / "serving" / "taxi-tips").iterdir() if p.name.isdigit())


@pytest.mark.timeout(1500)
def test_reproduce_reruns_a_pushed_version_in_its_own_root_and_compare_marks_what_changed(tmp_path):
    write_span(tmp_path / "data", 1, shipped_lines(4)[:1501])
    _run(tmp_path)
    [version] = _versions(tmp_path)

    code, output = _cli(tmp_path, "reproduce", version, "--output", str(tmp_path / "rerun"))
    assert f"tolerance: |difference| <= {reproduce.DEFAULT_TOLERANCE:g}" in output, output
    # Every metric, recorded and reproduced, equal within the tolerance: ExampleGen writes the rows in
    # one order, Transform's output does not depend on its batches, Trainer reads rows in content order.
    table = _metric_table(output)
    assert {"AUC", "calibration", "evaluation examples"} <= set(table), output
    for label, (recorded, reproduced) in table.items():
        assert abs(reproduced - recorded) <= reproduce.DEFAULT_TOLERANCE, f"{label}: {recorded} then, {reproduced} now"
    assert code == 0 and output.rstrip().splitlines()[-1].startswith("Reproduced:"), output
    # The re-run wrote into its own root: the real one still serves the one version, from one run.
    assert _versions(tmp_path) == [version]
    assert (tmp_path / "rerun" / "out" / "metadata.db").exists()
    # One run listed (log records Airflow's handlers print, when its tests ran first in this process, aside).
    assert len([line for line in _cli(tmp_path, "runs")[1].splitlines() if " pushed " in line]) == 1

    # Upstream of Trainer comes from the cache; Trainer trains with another learning rate.
    second_run = _run(tmp_path, 'hyperparameters={"learning_rate": 0.0123}').run_id
    code, comparison = _cli(tmp_path, "compare", version, second_run)
    assert code == 0, comparison
    marked = [line.split() for line in comparison.splitlines()[:-1] if line.startswith("* ")]
    assert any(words[1] == "learning_rate" and words[-1] == "0.0123" for words in marked), comparison
    # Same data and code: only the hyperparameter, the setting that carried it (not listed) and the metrics differ.
    assert {words[1] for words in marked} <= {"learning_rate", "AUC", "AUC,", "calibration", "precision", "recall",
                                              "pushed"}, comparison
    assert "sha256 span-1/data.csv" in comparison and "git commit" in comparison and "tensorflow" in comparison
