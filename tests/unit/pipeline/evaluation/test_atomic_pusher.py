"""The Pusher's executor on a stand-in model folder: what the serving folder and the PushedModel hold after a
push, after a failure at each point of it, and at the next push."""
from __future__ import annotations

import json
import os
import pathlib

import pytest
from tfx.types import standard_artifacts

from pipeline.evaluation import atomic_pusher
from pipeline.evaluation.atomic_pusher import FAULT_ENV, Executor, InjectedPushFault
from serving.server.model_store import list_versions

FILES = {"saved_model.pb": b"graph", "fingerprint.pb": b"fp", "variables/variables.index": b"index",
         "variables/variables.data-00000-of-00001": b"weights" * 100,
         "assets.extra/tf_serving_warmup_requests": b"warmup"}


def _model(folder: pathlib.Path) -> pathlib.Path:
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _tree(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


class Push:
    """One Pusher execution's inputs and outputs, as TFX hands them to the executor."""

    def __init__(self, tmp_path: pathlib.Path, blessed: bool = True, servable: bool = True, run: int = 1):
        self.serving = tmp_path / "serving" / "taxi-tips"
        infra = standard_artifacts.InfraBlessing()
        infra.uri = str(tmp_path / "ServabilityCheck" / "blessing" / str(run))
        _model(pathlib.Path(infra.uri) / "stamped_model")
        infra.set_int_custom_property("blessed", int(servable))
        infra.set_int_custom_property("has_model", int(servable))
        blessing = standard_artifacts.ModelBlessing()
        blessing.uri = str(tmp_path / "Evaluator" / "blessing" / str(run))
        blessing.set_int_custom_property("blessed", int(blessed))
        self.pushed = standard_artifacts.PushedModel()
        self.pushed.uri = str(tmp_path / "Pusher" / "pushed_model" / str(run))
        self.inputs = {"infra_blessing": [infra], "model_blessing": [blessing]}
        self.properties = {"push_destination": json.dumps({"filesystem": {"base_directory": str(self.serving)}})}

    def do(self) -> None:
        Executor().Do(self.inputs, {"pushed_model": [self.pushed]}, self.properties)

    def prop(self, name: str):
        value = self.pushed.mlmd_artifact.custom_properties.get(name)
        return None if value is None else getattr(value, value.WhichOneof("value"))


def test_a_push_renames_a_whole_copy_into_place_and_records_it(tmp_path):
    push = Push(tmp_path)
    push.do()
    [version] = list_versions(str(push.serving))
    assert os.listdir(push.serving) == [str(version)], "no staging folder is left"
    assert _tree(push.serving / str(version)) == FILES
    assert _tree(pathlib.Path(push.pushed.uri)) == FILES, "the archive copy"
    assert push.prop("pushed") == 1
    assert push.prop("pushed_version") == str(version)
    assert push.prop("pushed_destination") == str(push.serving / str(version))


def test_an_unblessed_model_is_not_pushed_and_nothing_is_copied(tmp_path):
    for push in (Push(tmp_path, blessed=False), Push(tmp_path, servable=False, run=2)):
        push.do()
        assert push.prop("pushed") == 0 and push.prop("pushed_version") is None
        assert not push.serving.exists() and not pathlib.Path(push.pushed.uri).exists()


@pytest.mark.parametrize("point", atomic_pusher.FAULT_POINTS)
def test_a_push_failing_at_any_point_leaves_no_version_and_records_nothing(tmp_path, monkeypatch, point):
    (tmp_path / "serving" / "taxi-tips" / "100").mkdir(parents=True)  # an earlier version stays as it was
    _model(tmp_path / "serving" / "taxi-tips" / "100")
    monkeypatch.setenv(FAULT_ENV, point)
    push = Push(tmp_path)
    with pytest.raises(InjectedPushFault, match=point):
        push.do()
    assert os.listdir(push.serving) == ["100"], "no new version and no staging folder"
    assert push.prop("pushed") is None and push.prop("pushed_version") is None
    monkeypatch.delenv(FAULT_ENV)
    retry = Push(tmp_path, run=2)
    retry.do()
    assert sorted(os.listdir(retry.serving)) == sorted(["100", retry.prop("pushed_version")])


def test_a_staging_folder_left_by_a_crash_is_ignored_by_servers_and_removed_by_the_next_push(tmp_path):
    serving = tmp_path / "serving" / "taxi-tips"
    half = serving / ".1700000000.staging"
    half.mkdir(parents=True)
    (half / "variables").mkdir()
    (half / "saved_model.pb").write_bytes(b"half")
    assert list_versions(str(serving)) == [], "a hidden name is not a version"
    push = Push(tmp_path)
    push.do()
    assert os.listdir(serving) == [push.prop("pushed_version")]


def test_a_taken_or_newer_version_number_makes_the_push_the_next_free_one(tmp_path):
    serving = tmp_path / "serving" / "taxi-tips"
    assert atomic_pusher.push(str(_model(tmp_path / "m")), str(serving), clock=lambda: 1_800_000_000.7) == \
        (1_800_000_000, str(serving / "1800000000"))
    # Same second: the next number, not a skipped push or an overwrite.
    version, _ = atomic_pusher.push(str(tmp_path / "m"), str(serving), clock=lambda: 1_800_000_000.9)
    assert version == 1_800_000_001
    # A version from the future (a rollback's, another clock's): still pushed above it, so it serves as latest.
    (serving / "1900000000").mkdir()
    version, _ = atomic_pusher.push(str(tmp_path / "m"), str(serving), clock=lambda: 1_800_000_002)
    assert version == 1_900_000_001
    assert sorted(os.listdir(serving)) == ["1800000000", "1800000001", "1900000000", "1900000001"]


def test_a_name_taken_between_choosing_and_renaming_is_skipped(tmp_path, monkeypatch):
    serving = tmp_path / "serving"
    model = _model(tmp_path / "m")
    real_copy_dir = atomic_pusher.io_utils.copy_dir

    def copy_then_race(source, destination, **kwargs):
        real_copy_dir(source, destination, **kwargs)
        _model(serving / "1800000000")  # another writer takes the number while this push copies

    monkeypatch.setattr(atomic_pusher.io_utils, "copy_dir", copy_then_race)
    version, path = atomic_pusher.push(str(model), str(serving), clock=lambda: 1_800_000_000)
    assert version == 1_800_000_001 and _tree(pathlib.Path(path)) == FILES
    assert sorted(os.listdir(serving)) == ["1800000000", "1800000001"]


def test_withdraw_takes_a_version_out_in_one_rename(tmp_path):
    serving = tmp_path / "serving"
    _model(serving / "5")
    atomic_pusher.withdraw(str(serving), 5)
    assert os.listdir(serving) == []


def test_remote_destinations_copy_saved_model_pb_last(tmp_path, monkeypatch):
    copied = []
    monkeypatch.setattr(atomic_pusher, "is_local", lambda path: False)
    monkeypatch.setattr(atomic_pusher.fileio, "copy", lambda src, dst, overwrite=False: copied.append(
        os.path.basename(dst)) or pathlib.Path(dst).write_bytes(pathlib.Path(src).read_bytes()))
    atomic_pusher.push(str(_model(tmp_path / "m")), str(tmp_path / "serving"), clock=lambda: 7)
    assert copied[-1] == "saved_model.pb" and sorted(copied) == sorted(os.path.basename(n) for n in FILES)

