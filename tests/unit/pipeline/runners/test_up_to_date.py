"""A rerun with nothing changed stops at once; any change, or any doubt, means a full run.

Runs are recorded in a real ML Metadata store as LocalDagRunner records them (the shared
recorder); the data is a small span of the shipped CSV.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from tfx.types import standard_artifacts

from pipeline.config import PipelineConfig
from pipeline.prepare import prepare
from pipeline.runners import up_to_date
from tests.conftest import REPO, shipped_lines, write_span

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def config(tmp_path) -> PipelineConfig:
    write_span(tmp_path / "data", 1, shipped_lines(1)[:200])
    return PipelineConfig(data_root=str(tmp_path / "data"), output_root=str(tmp_path))  # the recorder's store


def _finished_run(recorder, config: PipelineConfig, run_id: str, remember: bool = True) -> pathlib.Path:
    """A run whose every execution completed, with its outputs on disk; remembered as the local runner does."""
    folder = pathlib.Path(config.output_root, "pipeline", run_id)
    folder.mkdir(parents=True)
    model = standard_artifacts.Model()
    model.uri = str(folder)
    recorder.execution(run_id, "Trainer", "COMPLETE", outputs={"model": [model]})
    recorder.execution(run_id, "Pusher", "CACHED")
    recorder.link(run_id)
    if remember:
        up_to_date.remember(config, prepare(config), up_to_date.LastRun(run_id, "2026-12-03T10:00:00", None))
    return folder


def test_nothing_changed_names_the_last_run(recorder, config):
    _finished_run(recorder, config, "r1")
    last = up_to_date.unchanged_since(config)
    assert last is not None and last.run_id == "r1" and last.pushed is None


@pytest.mark.parametrize("change", ["data", "setting", "cache off", "newer run", "output gone", "forgotten",
                                    "pushed version gone", "garbled record"])
def test_any_change_or_doubt_means_a_full_run(recorder, config, change):
    folder = _finished_run(recorder, config, "r1")
    if change == "data":
        span = pathlib.Path(config.data_root, "span-1", "data.csv")
        span.write_text(span.read_text().replace("Cash", "Credit Card", 1))
    elif change == "setting":
        config = PipelineConfig(data_root=config.data_root, output_root=config.output_root, train_steps=999)
    elif change == "cache off":
        config = PipelineConfig(data_root=config.data_root, output_root=config.output_root, enable_cache=False)
    elif change == "newer run":  # another runner, or a run stopped before it remembered anything
        recorder.execution("r2", "CsvCheck", "FAILED")
        recorder.link("r2")
    elif change == "output gone":
        folder.rmdir()
    elif change == "forgotten":
        up_to_date.forget(config)
    elif change == "pushed version gone":
        up_to_date.remember(config, prepare(config), up_to_date.LastRun("r1", "now", str(folder / "serving" / "7")))
    elif change == "garbled record":
        pathlib.Path(config.output_root, up_to_date.STATE_FILE).write_text("{")
    assert up_to_date.unchanged_since(config) is None


def test_a_failed_last_run_is_never_short_cut(recorder, config):
    _finished_run(recorder, config, "r1", remember=False)
    recorder.execution("r1", "Evaluator", "FAILED")
    up_to_date.remember(config, prepare(config), up_to_date.LastRun("r1", "now", None))
    assert up_to_date.unchanged_since(config) is None


def test_remote_data_is_not_fingerprinted(config):
    remote = PipelineConfig(data_root="gs://bucket/taxi", output_root=config.output_root)
    assert up_to_date.fingerprint(remote, prepare(config)) is None


def test_a_confirmation_is_kept_with_its_run(recorder, config):
    _finished_run(recorder, config, "r1")
    last = up_to_date.unchanged_since(config)
    up_to_date.confirm(config, last)
    run_id, when = up_to_date.confirmed(config)
    assert run_id == "r1" and when > 0
    assert up_to_date.unchanged_since(config) == last  # still unchanged after confirming


def test_the_check_imports_neither_tensorflow_nor_tfx(recorder, config):
    _finished_run(recorder, config, "r1")
    code = ("import sys; from pipeline.config import PipelineConfig; from pipeline.runners import up_to_date; "
            f"c = PipelineConfig(data_root={config.data_root!r}, output_root={config.output_root!r}); "
            "assert up_to_date.unchanged_since(c) is not None; "
            "print(sorted(m for m in ('tensorflow', 'tfx', 'apache_beam') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=100,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"



def test_a_check_that_cannot_answer_lets_the_run_go_ahead(config, monkeypatch, capsys):
    from pipeline.cli import pipeline_commands

    def broken(_config):
        raise OSError("store unreachable")

    monkeypatch.setattr(up_to_date, "unchanged_since", broken)
    assert pipeline_commands._nothing_changed(config) is False  # noqa: SLF001
    assert capsys.readouterr().out == ""
