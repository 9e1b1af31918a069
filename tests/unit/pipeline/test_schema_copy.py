"""The content-addressed schema copy is written whole: to a temporary file beside it, then renamed."""
import os
import pathlib

import pytest

from pipeline import prepare
from pipeline.config import load_config
from tests.conftest import SCHEMA, SHIPPED_SPANS


def _config(tmp_path):
    return load_config(None, [f"output_root={tmp_path}", f"data_root={SHIPPED_SPANS}"])


def test_the_copy_holds_the_whole_schema_and_nothing_else_is_left(tmp_path):
    copy = pathlib.Path(prepare.content_addressed_schema(_config(tmp_path)))
    assert copy.read_bytes() == SCHEMA.read_bytes()
    assert os.listdir(copy.parent) == ["schema.pbtxt"]


def test_a_copy_torn_by_an_earlier_crash_is_written_again(tmp_path):
    config = _config(tmp_path)
    copy = pathlib.Path(prepare.content_addressed_schema(config))
    copy.write_bytes(SCHEMA.read_bytes()[:100])  # what an in-place write cut short left
    assert prepare.content_addressed_schema(config) == str(copy)
    assert copy.read_bytes() == SCHEMA.read_bytes()


def test_a_write_that_fails_leaves_no_copy_and_no_temporary_file(tmp_path, monkeypatch):
    def crash(source, destination):
        assert pathlib.Path(source).parent == pathlib.Path(destination).parent, "renamed within its folder"
        assert pathlib.Path(source).read_bytes() == SCHEMA.read_bytes(), "complete before the rename"
        raise OSError("disk gone")

    monkeypatch.setattr(prepare.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        prepare.content_addressed_schema(_config(tmp_path))
    [folder] = (tmp_path / "pipeline" / "curated_schema").iterdir()
    assert os.listdir(folder) == []
