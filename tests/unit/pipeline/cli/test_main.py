"""The command line's dispatch: every command has help, settings errors and a missing store are one clear line."""
import pytest

from pipeline.cli.main import _parser, main

COMMANDS = ("run", "compile", "generate", "schema-diff", "runs", "lineage", "rollback", "card", "predict")


def test_every_command_is_listed_and_has_its_own_help(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    listed = capsys.readouterr().out
    for command in COMMANDS:
        assert command in listed
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: taxi-pipeline " + command in capsys.readouterr().out


def test_each_command_has_a_handler():
    parser = _parser()
    required = {"compile": ["--target", "kubeflow"], "generate": ["--rows", "1", "--out", "x"], "lineage": ["1"],
                "rollback": ["--to", "1"], "card": ["1"], "predict": ["--input", "a", "--output", "b"]}
    for command in COMMANDS:
        args = parser.parse_args([command, *required.get(command, [])])
        assert callable(args.handler)


def test_an_unknown_setting_is_one_line_and_exit_2(capsys):
    assert main(["runs", "--set", "no_such_setting=1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("taxi-pipeline: ") and "no_such_setting" in error


def test_governance_commands_say_when_there_is_no_store(tmp_path, capsys):
    for command in (["runs"], ["lineage", "1"], ["card", "1"], ["rollback", "--to", "1"]):
        assert main([*command, "--set", f"output_root={tmp_path}"]) == 2
        assert f"no metadata store at {tmp_path}/metadata.db; run the pipeline first" in capsys.readouterr().out


def test_help_and_settings_load_without_tensorflow():
    """`taxi-pipeline --help` and reading settings answer at once: no TensorFlow start-up."""
    import subprocess
    import sys

    probe = ("import sys; from pipeline.cli.main import _parser; from pipeline.config import load_config; "
             "_parser().format_help(); load_config(None, ['spans=window:2']); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tfx', 'apache_beam')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
