"""Rollback's edit of a TF Serving model config (the shipped serving/deploy/models.config), and its record."""
from __future__ import annotations

import os
import shutil

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2
from tfx.types import standard_artifacts

from pipeline import artifacts
from pipeline.config import PipelineConfig
from pipeline.governance import rollback as rollback_module
from pipeline.governance.rollback import RollbackError, RollbackPending, rollback
from pipeline.governance.runs import format_runs, list_runs
from tests.conftest import REPO

SHIPPED = REPO / "serving" / "deploy" / "models.config"
STABLE, CANARY, NEW = 1795435162, 1795439358, 1795500000

TWO_MODELS = """
model_config_list {
  config {
    name: "taxi-tips"
    base_path: "/models/taxi-tips"
    model_platform: "tensorflow"
    version_labels { key: "stable" value: 10 }
  }
  config {
    name: "fare-estimate"
    base_path: "/models/fare-estimate"
    model_platform: "tensorflow"
    version_labels { key: "stable" value: 7 }
    version_labels { key: "canary" value: 8 }
  }
}
"""


def read(path) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(open(path).read(), model_server_config_pb2.ModelServerConfig())


def models(config) -> dict:
    return {entry.name: entry for entry in config.model_config_list.config}


@pytest.fixture
def shipped_copy(tmp_path):
    path = tmp_path / "models.config"
    shutil.copy(SHIPPED, path)
    return path


def test_shipped_config_has_the_labels_these_tests_move(shipped_copy):
    entry = models(read(shipped_copy))["taxi-tips"]
    assert dict(entry.version_labels) == {"stable": STABLE, "canary": CANARY}


def test_moving_stable_points_it_at_the_new_version_and_keeps_the_rest(shipped_copy):
    before = models(read(shipped_copy))["taxi-tips"]
    rollback_module.move_label(str(shipped_copy), "taxi-tips", "stable", NEW)
    after = models(read(shipped_copy))["taxi-tips"]
    assert dict(after.version_labels) == {"stable": NEW, "canary": CANARY}
    assert (after.base_path, after.model_platform) == (before.base_path, before.model_platform)
    # The versions the policy loaded before still load: canary keeps serving.
    assert {STABLE, CANARY} <= set(after.model_version_policy.specific.versions)


def test_moving_a_label_leaves_other_models_untouched(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(TWO_MODELS)
    rollback_module.move_label(str(path), "taxi-tips", "stable", 12)
    after = models(read(path))
    assert dict(after["taxi-tips"].version_labels) == {"stable": 12}
    assert models(read(path))["fare-estimate"] == models(text_format.Parse(
        TWO_MODELS, model_server_config_pb2.ModelServerConfig()))["fare-estimate"]


def test_a_label_the_model_did_not_have_is_added(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(TWO_MODELS)
    rollback_module.move_label(str(path), "taxi-tips", "rolled-back", 12)
    assert dict(models(read(path))["taxi-tips"].version_labels) == {"stable": 10, "rolled-back": 12}


def test_the_config_is_replaced_whole_leaving_no_staging_file(shipped_copy):
    rollback_module.move_label(str(shipped_copy), "taxi-tips", "stable", NEW)
    assert sorted(os.listdir(shipped_copy.parent)) == ["models.config"]


def test_unknown_model_name_raises_naming_the_file_and_changes_nothing(shipped_copy):
    before = shipped_copy.read_text()
    with pytest.raises(RollbackError, match=f"{shipped_copy}: no model named 'taxi-tip'"):
        rollback_module.move_label(str(shipped_copy), "taxi-tip", "stable", NEW)
    assert shipped_copy.read_text() == before


def test_the_version_the_label_moves_to_is_one_the_specific_policy_loads(shipped_copy):
    rollback_module.move_label(str(shipped_copy), "taxi-tips", "stable", NEW)
    entry = models(read(shipped_copy))["taxi-tips"]
    assert entry.model_version_policy.HasField("specific")
    assert NEW in entry.model_version_policy.specific.versions


def test_listing_the_new_version_leaves_every_label_where_it_was(shipped_copy):
    rollback_module._list_version(str(shipped_copy), "taxi-tips", NEW)
    entry = models(read(shipped_copy))["taxi-tips"]
    assert list(entry.model_version_policy.specific.versions) == [STABLE, CANARY, NEW]
    assert dict(entry.version_labels) == {"stable": STABLE, "canary": CANARY}


def test_the_edit_lists_every_labelled_version_and_drops_none(tmp_path):
    # A config whose `stable` names a version it does not list (TF Serving refuses it): the edit repairs it.
    path = tmp_path / "models.config"
    path.write_text('model_config_list { config { name: "taxi-tips" base_path: "/m" model_platform: "tensorflow" '
                    'model_version_policy { specific { versions: 5 versions: 3 } } '
                    'version_labels { key: "stable" value: 6 } version_labels { key: "canary" value: 5 } } }')
    rollback_module._list_version(str(path), "taxi-tips", 9)
    entry = models(read(path))["taxi-tips"]
    assert list(entry.model_version_policy.specific.versions) == [3, 5, 6, 9]
    assert dict(entry.version_labels) == {"stable": 6, "canary": 5}
    rollback_module.move_label(str(path), "taxi-tips", "stable", 9)
    entry = models(read(path))["taxi-tips"]
    assert list(entry.model_version_policy.specific.versions) == [3, 5, 6, 9]  # 6 lost its label but stays
    assert dict(entry.version_labels) == {"stable": 9, "canary": 5}


WITH_A_SPECIFIC_POLICY = TWO_MODELS.replace(  # fare-estimate's stable is not even listed
    'version_labels { key: "stable" value: 7 }',
    'model_version_policy { specific { versions: 8 } } version_labels { key: "stable" value: 7 }')


@pytest.mark.parametrize("text, model", [(SHIPPED.read_text(), "taxi-tips"), (TWO_MODELS, "taxi-tips"),
                                         (TWO_MODELS, "fare-estimate"), (WITH_A_SPECIFIC_POLICY, "fare-estimate")])
def test_no_edit_leaves_a_label_on_a_version_the_policy_does_not_load(tmp_path, text, model):
    from serving.deploy.production_config import labels_not_listed

    path = tmp_path / "models.config"
    path.write_text(text)
    rollback_module._list_version(str(path), model, NEW)
    assert all(not labels_not_listed(entry) for entry in models(read(path)).values())
    rollback_module.move_label(str(path), model, "stable", NEW)
    rollback_module.move_label(str(path), model, "canary", NEW + 1)
    after = models(read(path))
    assert all(not labels_not_listed(entry) for entry in after.values())
    assert after[model].version_labels["stable"] == NEW


def test_a_latest_policy_is_left_as_it_is(tmp_path):
    # `latest` loads the newest version, which the copy is: nothing to list.
    path = tmp_path / "models.config"
    path.write_text('model_config_list { config { name: "taxi-tips" base_path: "/m" model_platform: "tensorflow" '
                    'model_version_policy { latest { num_versions: 2 } } version_labels { key: "stable" value: 4 } } }')
    rollback_module.move_label(str(path), "taxi-tips", "stable", NEW)
    entry = models(read(path))["taxi-tips"]
    assert entry.model_version_policy.latest.num_versions == 2 and not entry.model_version_policy.HasField("specific")
    assert dict(entry.version_labels) == {"stable": NEW}


def test_rollback_without_a_metadata_store_says_nothing_was_pushed(tmp_path):
    config = PipelineConfig(output_root=str(tmp_path / "out"))
    with pytest.raises(RollbackError, match=f"no metadata store at {config.metadata_path}: nothing was pushed"):
        rollback(config, "1795435162")


def pushed(recorder, config, version: int):
    """A run whose Pusher pushed `version` into the serving folder."""
    destination = os.path.join(config.serving_dir, str(version))
    os.makedirs(os.path.join(destination, "variables"))
    open(os.path.join(destination, "saved_model.pb"), "wb").close()
    model = standard_artifacts.PushedModel()
    model.uri = destination
    model.set_int_custom_property("pushed", 1)
    model.set_string_custom_property("pushed_destination", destination)
    model.set_string_custom_property("pushed_version", str(version))
    recorder.execution(f"run-{version}", artifacts.PUSHER, outputs={"pushed_model": [model]})
    return model


def rollbacks(recorder, config) -> list[str]:
    return [summary.outcome for summary in list_runs(recorder.store, config.pipeline_name)
            if summary.outcome.startswith("rollback")]


def test_rollback_without_a_model_config_copies_the_version_and_is_listed_in_runs(recorder, tmp_path):
    config = PipelineConfig(output_root=str(tmp_path))  # its metadata.db is the recorder's store
    pushed(recorder, config, 100)
    pushed(recorder, config, 200)
    new_version = rollback(config, "100")
    assert new_version > 200
    assert sorted(os.listdir(config.serving_dir)) == sorted(["100", "200", str(new_version)])
    assert os.path.exists(os.path.join(config.serving_dir, str(new_version), "saved_model.pb"))
    summaries = list_runs(recorder.store, config.pipeline_name)
    assert summaries[-1].outcome == f"rollback: version 100 serves again as {new_version}"
    assert f"rollback-{new_version}" in format_runs(summaries)


def test_without_a_server_rollback_lists_the_copy_first_and_a_rerun_moves_the_label(recorder, tmp_path, shipped_copy):
    config = PipelineConfig(output_root=str(tmp_path))
    pushed(recorder, config, STABLE)
    pushed(recorder, config, CANARY)
    with pytest.raises(RollbackPending, match="run the same command again to move the label") as pending:
        rollback(config, str(STABLE), model_config_path=str(shipped_copy))
    new_version = pending.value.new_version
    entry = models(read(shipped_copy))["taxi-tips"]
    # Step 1: the server is to load the copy; no label names it yet.
    assert list(entry.model_version_policy.specific.versions) == [STABLE, CANARY, new_version]
    assert dict(entry.version_labels) == {"stable": STABLE, "canary": CANARY}
    assert rollbacks(recorder, config) == [f"rollback: version {STABLE} serves again as {new_version}"]
    # Step 2, once the server has loaded it: the same command finishes this rollback, copying nothing.
    assert rollback(config, str(STABLE), model_config_path=str(shipped_copy)) == new_version
    entry = models(read(shipped_copy))["taxi-tips"]
    assert dict(entry.version_labels) == {"stable": new_version, "canary": CANARY}
    assert list(entry.model_version_policy.specific.versions) == [STABLE, CANARY, new_version]
    assert sorted(os.listdir(config.serving_dir)) == sorted(map(str, [STABLE, CANARY, new_version]))
    assert rollbacks(recorder, config) == [f"rollback: version {STABLE} serves again as {new_version}"]


def test_a_rerun_after_a_newer_push_is_a_new_rollback(recorder, tmp_path, shipped_copy):
    config = PipelineConfig(output_root=str(tmp_path))
    pushed(recorder, config, STABLE)
    with pytest.raises(RollbackPending) as pending:
        rollback(config, str(STABLE), model_config_path=str(shipped_copy))
    pushed(recorder, config, pending.value.new_version + 1)
    with pytest.raises(RollbackPending) as again:
        rollback(config, str(STABLE), model_config_path=str(shipped_copy))
    assert again.value.new_version > pending.value.new_version + 1
    assert len(rollbacks(recorder, config)) == 2


class FakeServer:
    """What the model-status API says of the new version, call by call; checks the config it is asked under."""

    def __init__(self, model_config, states):
        self.model_config, self.states, self.asked = model_config, list(states), 0

    def __call__(self, server, model_name, version):
        entry = models(read(self.model_config))[model_name]
        # The server is asked only once the copy is listed, and while no label names it.
        assert version in entry.model_version_policy.specific.versions
        assert version not in entry.version_labels.values()
        self.asked += 1
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def test_with_a_server_the_label_moves_once_the_server_reports_the_copy_available(
        recorder, tmp_path, shipped_copy, monkeypatch):
    config = PipelineConfig(output_root=str(tmp_path))
    pushed(recorder, config, STABLE)
    pushed(recorder, config, CANARY)
    fake = FakeServer(shipped_copy, [(None, "HTTP 404"), ("LOADING", ""), ("AVAILABLE", "")])
    monkeypatch.setattr(rollback_module, "_version_state", fake)
    monkeypatch.setattr(rollback_module.time, "sleep", lambda seconds: None)
    new_version = rollback(config, str(STABLE), model_config_path=str(shipped_copy), server="127.0.0.1:8500")
    assert fake.asked == 3
    entry = models(read(shipped_copy))["taxi-tips"]
    assert dict(entry.version_labels) == {"stable": new_version, "canary": CANARY}
    assert list(entry.model_version_policy.specific.versions) == [STABLE, CANARY, new_version]


def test_a_copy_the_server_fails_to_load_keeps_the_label_where_it_was(recorder, tmp_path, shipped_copy, monkeypatch):
    config = PipelineConfig(output_root=str(tmp_path))
    pushed(recorder, config, STABLE)
    monkeypatch.setattr(rollback_module, "_version_state", FakeServer(shipped_copy, [("END", "bad file")]))
    with pytest.raises(RollbackPending, match="has not loaded it: it failed to load it: bad file. The label "
                                              "'stable' is not moved"):
        rollback(config, str(STABLE), model_config_path=str(shipped_copy), server="http://127.0.0.1:8501")
    assert dict(models(read(shipped_copy))["taxi-tips"].version_labels) == {"stable": STABLE, "canary": CANARY}
    monkeypatch.setattr(rollback_module, "_version_state", FakeServer(shipped_copy, [(None, "HTTP 404")]))
    with pytest.raises(RollbackPending, match=r"did not report it AVAILABLE within 0 s \(last: HTTP 404\)"):
        rollback(config, str(STABLE), model_config_path=str(shipped_copy), server="http://127.0.0.1:8501",
                 wait_seconds=0)
    assert dict(models(read(shipped_copy))["taxi-tips"].version_labels) == {"stable": STABLE, "canary": CANARY}
    assert len(rollbacks(recorder, config)) == 1  # both were the same rollback


def test_a_config_without_the_model_stops_the_rollback_before_anything_changes(recorder, tmp_path, shipped_copy):
    config = PipelineConfig(output_root=str(tmp_path), pipeline_name="fare-estimate")
    pushed(recorder, config, 100)
    before = shipped_copy.read_text()
    with pytest.raises(RollbackError, match="no model named 'fare-estimate'"):
        rollback(config, "100", model_config_path=str(shipped_copy))
    assert os.listdir(config.serving_dir) == ["100"] and shipped_copy.read_text() == before
    assert recorder.store.get_executions_by_type("Rollback") == []


def test_rollback_to_a_version_never_pushed_lists_the_pushed_ones(recorder, tmp_path):
    config = PipelineConfig(output_root=str(tmp_path))
    pushed(recorder, config, 100)
    with pytest.raises(ValueError, match="no pushed version 300 in the metadata store; pushed versions: 100"):
        rollback(config, "300")
