"""PipelineConfig: defaults, TOML file, --set overrides and their errors."""
import pytest

from pipeline.config import PipelineConfig, load_config


def test_defaults_point_at_the_shipped_data():
    config = load_config()
    assert config.spans == "all"
    assert config.data_root.endswith("data/taxi")
    assert config.serving_dir.endswith("out/serving/taxi-tips")


def test_file_then_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('train_steps = 20\nspans = "latest"\n[hyperparameters]\nlearning_rate = 0.1\n')
    config = load_config(str(path), ["train_steps=30", "spans=2", "enable_cache=false"])
    assert (config.train_steps, config.spans, config.enable_cache) == (30, 2, False)
    assert config.hyperparameters == {"learning_rate": 0.1}
    assert config.metadata_path.endswith("out/metadata.db")


@pytest.mark.parametrize("override, message", [
    (["train_step=3"], "no such setting"),
    (["train_steps=many"], "expected a int"),
    (["spans=newest"], "spans must be"),
    (["enable_cache=yes"], "expected true or false"),
    (["hyperparameters=[1"], "expected a JSON object"),
    (["data_root=/nonexistent"], "is not a directory"),
    (["train_steps"], "expected key=value"),
])
def test_bad_settings_name_the_setting(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, override)


def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("train_steps = \n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load_config(str(path))
    path.write_text("colour = 'red'\n")
    with pytest.raises(ValueError, match="unknown settings \\['colour'\\]"):
        load_config(str(path))


def test_every_setting_has_a_default():
    assert PipelineConfig().validate().beam_profile == "in_memory"


def test_toml_round_trip(tmp_path):
    from pipeline.config import to_toml
    config = load_config(None, ['hyperparameters={"hidden_units": [8, 4], "learning_rate": 0.5}', "spans=window:2",
                                'pipeline_name=taxi-x', "enable_cache=false"])
    path = tmp_path / "round.toml"
    path.write_text(to_toml(config))
    assert load_config(str(path)) == config
