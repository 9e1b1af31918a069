"""pipeline/tfx_fixes.py fix 5: a Beam executor on the DirectRunner builds no TFX package.

TFX's own BaseBeamExecutor is constructed as the launchers construct it; the system temp
folder is pointed at tmp_path, so any package TFX builds shows up there.
"""
from __future__ import annotations

import tempfile

import pytest
from tfx.dsl.components.base import base_beam_executor
from tfx.utils import dependency_utils

from pipeline import tfx_fixes
from pipeline.runners import beam_profiles

pytestmark = pytest.mark.timeout(120)


class _Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        raise NotImplementedError


def _args_after_construction(args: list[str]) -> list[str]:
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=list(args), tmp_dir="", unique_id="1")
    return _Executor(context)._beam_pipeline_args  # noqa: SLF001


@pytest.fixture
def temp_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    original = dependency_utils.make_beam_dependency_flags
    yield tmp_path
    dependency_utils.make_beam_dependency_flags = original


@pytest.mark.parametrize("profile", ["in_memory", "multi_processing"])
def test_direct_runner_profiles_build_no_package(temp_folder, profile):
    tfx_fixes.apply(server_store=False)
    args = _args_after_construction(beam_profiles.beam_pipeline_args(profile))
    assert not any(arg.startswith("--extra_package") for arg in args)
    assert list(temp_folder.iterdir()) == []


def test_a_remote_runner_still_gets_tfx_packaged(temp_folder):
    tfx_fixes.apply(server_store=False)
    args = _args_after_construction(beam_profiles.beam_pipeline_args("flink", job_endpoint="127.0.0.1:8099"))
    [package] = [arg.split("=", 1)[1] for arg in args if arg.startswith("--extra_package")]
    assert package.startswith(str(temp_folder)) and package.endswith(".tar.gz")


def test_without_the_fix_tfx_leaves_a_package_behind(temp_folder):
    """What the fix is for: TFX's own function, on the in-memory profile."""
    dependency_utils.make_beam_dependency_flags = tfx_fixes._ORIGINAL_DEPENDENCY_FLAGS  # noqa: SLF001
    args = _args_after_construction(beam_profiles.beam_pipeline_args("in_memory"))
    assert any(arg.startswith("--extra_package") for arg in args)
    assert len(list(temp_folder.iterdir())) == 1
