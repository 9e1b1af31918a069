"""The pipeline's bulk Evaluator writes what TFX's TFMA Evaluator writes; the floor computes the same.

Two small pipeline runs in one home: the first evaluates the candidate alone (blessed), the
second (a worse model) against the first one's pushed model as baseline (not blessed), so
both shapes of evaluation (one model; candidate, baseline and their differences) and both
decisions are checked. TFX's own executor evaluates each recorded execution again: every
point value on every slice must equal the pipeline's to 1e-6, the same metrics must carry
intervals, and the blessing must be the same. benchmarks/evaluator_floor.py must agree too.
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import evaluator_floor
from pipeline.config import load_config
from pipeline.runners.local_runner import run_local
from tests.conftest import REPO, SMALL_RUN_SETTINGS, shipped_lines, write_span

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# A learning rate of zero leaves the network at its random start: not blessed, so there is a baseline.
WORSE = 'hyperparameters={"learning_rate": 0.0}'


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("floor_home")
    write_span(root / "data", 1, shipped_lines(4)[:1501])
    for extra in ([], [WORSE]):
        config = load_config(None, [f"data_root={root / 'data'}", f"output_root={root / 'out'}", "spans=latest",
                                    *SMALL_RUN_SETTINGS, *extra])
        out = io.StringIO()
        assert run_local(config, out=out).succeeded, out.getvalue()
    return root


def _evaluator_executions(home: pathlib.Path) -> list[evaluator_floor.EvaluatorRun]:
    from ml_metadata.proto import metadata_store_pb2

    from pipeline import metadata
    store = metadata.open_store(str(home / "out" / "metadata.db"))
    ids = sorted(e.id for c in store.get_contexts_by_type("node") if c.name.endswith(".Evaluator")
                 for e in store.get_executions_by_context(c.id)
                 if e.last_known_state == metadata_store_pb2.Execution.COMPLETE)
    return [evaluator_floor.find_evaluator_run(str(home / "out" / "metadata.db"), i) for i in ids]


@pytest.mark.timeout(900)
def test_floor_metrics_equal_evaluator_metrics_with_and_without_baseline(home):
    runs = _evaluator_executions(home)
    assert [run.baseline for run in runs] == [None, "baseline"]
    for run in runs:
        floor, floor_intervals, timing = evaluator_floor.compute(run, batch_size=10_000)
        written, written_intervals = evaluator_floor.evaluator_metrics(run.evaluation_uri)
        result = evaluator_floor.compare(floor, floor_intervals, written, written_intervals, run.min_examples)
        assert result["agree"], result
        assert result["largest_difference"] <= evaluator_floor.TOLERANCE
        # Every slice of the EvalConfig (overall + 4 slicings) and all metrics of every model were compared.
        assert result["slices"] == len(written) == timing["slices"] > 20
        # 9 metrics per model, and with a baseline their 9 differences (auc_change_upper_bound, an
        # interval bound, is reported apart).
        assert result["values"] == 9 * (len(run.models) + (1 if run.baseline else 0)) * result["slices"]
        overall = floor[()]
        model = next(name for name in run.models if name != run.baseline)
        assert overall[("example_count", model, False)] == timing["examples"] > 400
        assert 0.5 < overall[("auc", model, False)] <= 1.0


def _decision(blessing_uri: str) -> bool:
    return os.path.exists(os.path.join(blessing_uri, "BLESSED"))


def _failures(validation) -> list[tuple[str, str, str]]:
    """(slice, metric, threshold) of every failed threshold; values aside (auc_change_upper_bound is
    an interval bound, and the two jackknifes draw different buckets)."""
    return sorted((str(per_slice.slice_key), str(failure.metric_key), str(failure.metric_threshold))
                  for per_slice in validation.metric_validations_per_slice for failure in per_slice.failures)


@pytest.mark.timeout(900)
def test_bulk_evaluator_writes_what_tfmas_evaluator_writes(home, tmp_path):
    import tensorflow_model_analysis as tfma

    metadata_path = str(home / "out" / "metadata.db")
    decisions = []
    for index, run in enumerate(_evaluator_executions(home)):
        tfmas = evaluator_floor.profile_evaluator(metadata_path, None, "in_memory", run.execution_id, stock=True,
                                                  work=tmp_path / f"tfma-{index}")
        ours, ours_intervals = evaluator_floor.evaluator_metrics(run.evaluation_uri)
        theirs, theirs_intervals = evaluator_floor.evaluator_metrics(tfmas["evaluation"])
        result = evaluator_floor.compare(ours, ours_intervals, theirs, theirs_intervals, run.min_examples)
        assert result["agree"] and not result["problems"], result
        assert result["values"] >= 9 * len(run.models) * len(theirs) > 200
        # The same metrics carry an interval on the same slices (TFMA's rules for which do).
        assert {key: set(value) for key, value in ours_intervals.items()} == \
            {key: set(value) for key, value in theirs_intervals.items()}
        # Both jackknifes draw 20 buckets, different ones: their interval widths agree in the middle.
        ratios = [(ours_intervals[key][metric][1] - ours_intervals[key][metric][0])
                  / (theirs_intervals[key][metric][1] - theirs_intervals[key][metric][0])
                  for key in theirs_intervals for metric in theirs_intervals[key]
                  if theirs_intervals[key][metric][1] > theirs_intervals[key][metric][0]]
        assert len(ratios) > 100 and 0.8 < float(np.nanmedian(ratios)) < 1.25
        # The same blessing, for the same reasons: the same thresholds failed on the same slices.
        mine, stock = tfma.load_validation_result(run.evaluation_uri), tfma.load_validation_result(tfmas["evaluation"])
        assert mine.validation_ok == stock.validation_ok
        assert _failures(mine) == _failures(stock)
        assert _decision(run.blessing_uri) == _decision(tfmas["blessing"]) == mine.validation_ok
        decisions.append(mine.validation_ok)
    assert decisions == [True, False]


@pytest.mark.timeout(600)
def test_bulk_evaluator_rerun_writes_the_same_intervals(home, tmp_path):
    """Its jackknife buckets follow each example's bytes: a rerun writes every bound again, to the bit."""
    metadata_path = str(home / "out" / "metadata.db")
    run = _evaluator_executions(home)[-1]
    again = evaluator_floor.profile_evaluator(metadata_path, None, "in_memory", run.execution_id, work=tmp_path)
    first, first_intervals = evaluator_floor.evaluator_metrics(run.evaluation_uri)
    second, second_intervals = evaluator_floor.evaluator_metrics(again["evaluation"])
    # Every slice's intervals compared (min_examples 0); NaN equals NaN there.
    result = evaluator_floor.compare(first, first_intervals, second, second_intervals, min_examples=0)
    assert result["agree"] and result["largest_difference"] == 0.0, result
    assert result["interval_largest_difference"] == 0.0, result
    assert {key: set(value) for key, value in first_intervals.items()} == \
        {key: set(value) for key, value in second_intervals.items()}
    assert sum(len(bounds) for bounds in first_intervals.values()) > 100


def test_floor_changed_on_purpose_disagrees(home):
    """The comparison can fail: a floor metric off by 1e-5 on one slice is reported."""
    run = _evaluator_executions(home)[0]
    floor, floor_intervals, _ = evaluator_floor.compute(run, batch_size=256)
    written, written_intervals = evaluator_floor.evaluator_metrics(run.evaluation_uri)
    floor[()][("auc", "", False)] += 1e-5
    result = evaluator_floor.compare(floor, floor_intervals, written, written_intervals, run.min_examples)
    assert not result["agree"] and result["largest_difference"] == pytest.approx(1e-5, rel=1e-3)


@pytest.mark.timeout(300)
def test_command_prints_agreement_and_writes_timings(home, tmp_path):
    result_path = tmp_path / "floor.json"
    process = subprocess.run([sys.executable, "benchmarks/evaluator_floor.py", "--output-root", str(home / "out"),
                              "--json", str(result_path)], cwd=REPO, capture_output=True, text=True, timeout=280)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert "metrics agree: yes (" in process.stdout
    measured = json.loads(result_path.read_text())
    assert measured["comparison"]["agree"] and measured["models"] == ["baseline", "candidate"]
    assert measured["wall_s"]["total"] > 0 and measured["wall_s"]["load models and predict"] > 0
