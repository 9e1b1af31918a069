"""Run provenance: data content hashes, the record on a run's context, changed spans, compare, reproduce plans."""
from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import subprocess

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline.cli import reproduce_commands
from pipeline.config import load_config
from pipeline.governance import compare, provenance, reproduce
from pipeline.prepare import content_hashes, files_fingerprint, prepare
from tests.conftest import shipped_lines, write_span

pytestmark = pytest.mark.timeout(120)


def _config(tmp_path: pathlib.Path, *extra: str):
    return load_config(None, [f"data_root={tmp_path / 'data'}", f"output_root={tmp_path / 'out'}", *extra])


@pytest.fixture
def data(tmp_path) -> pathlib.Path:
    for span in (1, 2):
        write_span(tmp_path / "data", span, shipped_lines(span)[:20])
    return tmp_path / "data"


def test_a_span_rewritten_at_the_same_size_and_time_is_new_input_and_a_touched_one_is_not(data):
    path = data / "span-2" / "data.csv"
    before = files_fingerprint(content_hashes([str(path)]))
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b"Cash", b"Cesh", 1))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same time
    assert files_fingerprint(content_hashes([str(path)])) != before
    path.write_bytes(path.read_bytes().replace(b"Cesh", b"Cash", 1))
    path.touch()  # a new time, the old content: still cached
    assert files_fingerprint(content_hashes([str(path)])) == before


def test_prepare_hashes_every_file_of_the_spans_it_reads(tmp_path, data):
    inputs = prepare(_config(tmp_path, "spans=latest"))
    path = str(data / "span-2" / "data.csv")
    assert inputs.spans_read == (2,)
    assert inputs.data_files == {path: provenance.file_sha256(path)}
    assert len(inputs.data_files[path]) == 64


def test_git_state_reads_unknown_without_git_or_outside_a_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)  # not a checkout
    assert provenance.git_state() == ("unknown", "unknown")
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert provenance.git_state() == ("unknown", "unknown")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_names_the_commit_and_a_dirty_tree(monkeypatch, tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "one")
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    assert provenance.git_state() == (git("rev-parse", "HEAD"), "no")
    (tmp_path / "b.py").write_text("y = 2\n")  # untracked code runs too
    assert provenance.git_state() == (git("rev-parse", "HEAD"), "yes")


def _recorded_run(recorder, config, run_id: str, trainer_state: str = "COMPLETE", hyperparameters=None,
                  pushed_version: str = ""):
    """A run in the store as LocalDagRunner leaves it, then recorded as local_runner does."""
    from tfx.types import standard_artifacts

    model = standard_artifacts.Model()
    model.uri = str(pathlib.Path(config.output_root) / "Trainer" / run_id)
    extra = pathlib.Path(model.uri) / "Format-Serving" / "assets.extra"
    extra.mkdir(parents=True)
    (extra / "hyperparameters.json").write_text(json.dumps(hyperparameters or {"learning_rate": 0.005}))
    recorder.execution(run_id, "Trainer", trainer_state, outputs={"model": [model]})
    # LocalDagRunner makes a run's context a child of the pipeline's (the shared recorder does not).
    store = recorder.store
    store.put_parent_contexts([metadata_store_pb2.ParentContext(
        child_id=store.get_context_by_type_and_name("pipeline_run", run_id).id,
        parent_id=store.get_context_by_type_and_name("pipeline", config.pipeline_name).id)])
    if pushed_version:
        pushed = standard_artifacts.PushedModel()
        pushed.uri = f"/serving/{pushed_version}"
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_string_custom_property("pushed_version", pushed_version)
        recorder.execution(run_id, "Pusher", outputs={"pushed_model": [pushed]})
    started = provenance.collect(config, prepare(config))
    return provenance.record(config, run_id, started)


def test_a_run_records_commit_lock_versions_data_hashes_and_hyperparameters(tmp_path, data, recorder, metadata_path):
    config = _config(tmp_path, f"metadata_store={metadata_path}", 'hyperparameters={"batch_size": 32}')
    written = _recorded_run(recorder, config, "run-1", hyperparameters={"learning_rate": 0.02, "batch_size": 32})
    loaded = provenance.load(provenance.metadata.open_store(str(metadata_path)), "run-1")
    assert loaded == written
    assert loaded.trained and loaded.hyperparameters == {"learning_rate": 0.02, "batch_size": 32}
    assert loaded.spans == [1, 2]
    assert sorted(loaded.data_files) == [str(data / "span-1" / "data.csv"), str(data / "span-2" / "data.csv")]
    assert loaded.lock_sha256 == provenance.file_sha256(str(provenance.LOCK_FILE))
    assert set(loaded.libraries) == set(provenance.LIBRARIES) and loaded.libraries["tfx"] == "1.16.0"
    assert loaded.python.startswith("3.11") and loaded.seed == "0"
    assert 'batch_size' in loaded.config_toml


def test_a_span_trained_on_whose_content_changed_is_named_before_the_next_run(tmp_path, data, recorder,
                                                                              metadata_path):
    config = _config(tmp_path, f"metadata_store={metadata_path}")
    _recorded_run(recorder, config, "run-1")
    _recorded_run(recorder, config, "run-2", trainer_state="FAILED")  # read span 2 but trained on nothing
    out = io.StringIO()
    provenance.before_run(config, prepare(config), out)
    assert out.getvalue() == ""  # unchanged data: nothing to say
    changed = data / "span-2" / "data.csv"
    changed.write_text(changed.read_text() + shipped_lines(2)[20])
    provenance.before_run(config, prepare(config), out)
    [line] = out.getvalue().splitlines()
    assert line.startswith(f"Data changed: span-2 file {changed} is not what run run-1 trained on (sha256 ")
    assert line.endswith("this run trains on the new content.")


def _view(run_id: str, **changes) -> compare.RunView:
    record = provenance.Provenance(
        git_commit="a" * 40, git_dirty="no", lock_sha256="b" * 64, python="3.11.7",
        libraries={"tensorflow": "2.16.2"}, seed="0", models_fingerprint="c" * 16,
        config_toml='train_steps = 1000\noutput_root = "/x"\n', data_root="/data", spans=[4],
        data_files={"/data/span-4/data.csv": "d" * 64}, hyperparameters={"learning_rate": 0.005}, trained=True)
    return compare.RunView(run_id, provenance.dataclasses.replace(record, **changes),
                           {"AUC": 0.93, "evaluation examples": 1413}, "")


def test_compare_marks_exactly_the_lines_that_differ():
    text = compare.format_comparison(
        _view("run-1"), _view("run-2", hyperparameters={"learning_rate": 0.02}, git_dirty="yes",
                              config_toml='train_steps = 500\noutput_root = "/y"\n',
                              data_files={"/data/span-4/data.csv": "e" * 64}))
    marked = [line.split()[1:] for line in text.splitlines()[:-1] if line.startswith(compare.MARK + " ")]
    assert [words[0] for words in marked] == ["learning_rate", "sha256", "dirty", "train_steps"]
    assert ["learning_rate", "0.0050", "0.0200"] in marked
    assert ["sha256", "span-4/data.csv", "d" * 16, "e" * 16] in marked
    assert text.splitlines()[-1] == "* marks a difference: 4 found."
    assert "  evaluation examples            1413" in text  # a count, not 1413.0000
    assert compare.format_comparison(_view("run-1"), _view("run-2")).endswith("No differences beyond the run ids.")


def test_reproduce_refuses_a_version_whose_data_changed_naming_the_file(tmp_path, data, recorder, metadata_path):
    config = _config(tmp_path, f"metadata_store={metadata_path}")
    _recorded_run(recorder, config, "run-1", pushed_version="1796000000")
    changed = data / "span-1" / "data.csv"
    changed.write_text(changed.read_text().replace("Cash", "Cesh", 1))
    with pytest.raises(reproduce.ReproduceError, match=f"{changed} changed \\(sha256 [0-9a-f]{{12}} recorded"):
        reproduce.plan(config, "1796000000", tmp_path / "work")


def test_reproduce_plans_the_recorded_settings_on_exactly_the_recorded_files(tmp_path, data, recorder,
                                                                               metadata_path):
    config = _config(tmp_path, f"metadata_store={metadata_path}", "train_steps=77", "tune=true")
    _recorded_run(recorder, config, "run-1", hyperparameters={"learning_rate": 0.02}, pushed_version="1796000000")
    write_span(data, 3, shipped_lines(3)[:5])  # a span that came later
    (data / "span-1" / "extra.csv").write_text(shipped_lines(1)[0])  # a file that came later
    plan = reproduce.plan(config, "1796000000", tmp_path / "work")
    rerun = plan.config
    assert (rerun.output_root, rerun.metadata_store) == (str(tmp_path / "work" / "out"), "")
    assert (rerun.train_steps, rerun.tune, rerun.hyperparameters) == (77, False, {"learning_rate": 0.02})
    linked = sorted(str(p.relative_to(rerun.data_root)) for p in pathlib.Path(rerun.data_root).rglob("*.csv"))
    assert linked == ["span-1/data.csv", "span-2/data.csv"]
    assert (pathlib.Path(rerun.data_root) / "span-1" / "data.csv").resolve() == data / "span-1" / "data.csv"


def test_reproduce_prints_metrics_side_by_side_and_judges_them_by_the_tolerance():
    lines, agree = reproduce.metric_lines({"AUC": 0.9160001, "calibration": 1.04},
                                          {"AUC": 0.9160001, "calibration": 1.0400005}, 1e-6)
    assert agree and lines[0].split() == ["metric", "recorded", "reproduced", "difference"]
    assert lines[1].split() == ["AUC", "0.91600010", "0.91600010", "+0.00e+00", "ok"]
    _, agree = reproduce.metric_lines({"AUC": 0.916}, {"AUC": 0.917}, 1e-6)
    assert not agree
    assert reproduce_commands.DEFAULT_TOLERANCE == reproduce.DEFAULT_TOLERANCE


@pytest.mark.parametrize("command", [["compare", "--help"], ["reproduce", "--help"], ["compare", "1", "2"]])
def test_compare_and_reproduce_answer_without_tensorflow(tmp_path, metadata_path, recorder, command):
    from tests.unit.pipeline.cli.test_startup_imports import imported_heavy, run_importtime

    done = run_importtime("-m", "pipeline.cli.main", *command, "--set", f"metadata_store={metadata_path}")
    assert ("usage: taxi-pipeline" if "--help" in command else "no run or pushed version '1'") in done.stdout
    assert imported_heavy(done.stderr) == []
