"""prepare(config): the definition-time file work, and the cache keys it puts code and files into."""
import pathlib
import shutil

import pytest

from pipeline import artifacts
from pipeline.config import load_config
from pipeline.pipeline import create_pipeline
from pipeline.prepare import ALL_SPANS_PATTERN, MODELS_DIR, models_fingerprint, prepare
from tests.conftest import SHIPPED_SPANS, shipped_lines, write_span


def test_fingerprint_follows_the_code(tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(MODELS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = models_fingerprint(copy)
    assert original == models_fingerprint(MODELS_DIR)
    with open(copy / "preprocessing.py", "a") as handle:
        handle.write("\n# a one-line change\n")
    assert models_fingerprint(copy) != original


def test_transform_and_trainer_carry_the_fingerprint(tmp_path):
    config = load_config(None, [f"output_root={tmp_path}"])
    components = {c.id: c for c in create_pipeline(config, prepare(config)).components}
    for name in ("Transform", "Trainer"):
        assert f'"models_fingerprint": "{models_fingerprint()}"' in components[name].exec_properties["custom_config"]


def test_create_pipeline_reads_no_files_beyond_prepare(tmp_path):
    """Airflow builds the pipeline at every DAG parse: the wiring must not scan data or copy files."""
    config = load_config(None, [f"output_root={tmp_path / 'out'}", f"data_root={SHIPPED_SPANS}"])
    inputs = prepare(config)
    # The data root and output root vanish after prepare: wiring still works from `inputs` alone.
    elsewhere = load_config(None, [f"output_root={tmp_path / 'gone'}"])
    elsewhere.data_root = str(tmp_path / "no-such-data")
    built = create_pipeline(elsewhere, inputs)
    example_gen = next(c for c in built.components if c.id == artifacts.EXAMPLE_GEN)
    assert example_gen.exec_properties["input_base"] == str(SHIPPED_SPANS)
    # TFX's SQLite connection config makes the store's folder; nothing is written into it.
    assert list((tmp_path / "gone").rglob("*")) == []


def test_prepare_names_the_missing_data_root(tmp_path):
    config = load_config(None, [f"output_root={tmp_path}"])
    config.data_root = str(tmp_path / "no-spans")
    (tmp_path / "no-spans").mkdir()
    with pytest.raises(ValueError, match="no-spans has no span-<N>/ folders"):
        prepare(config)


def test_a_window_reads_a_folder_of_links_named_after_its_spans(tmp_path):
    data = tmp_path / "data"
    for span in (1, 2, 3):
        write_span(data, span, shipped_lines(4)[:3])
    config = load_config(None, [f"output_root={tmp_path / 'out'}", f"data_root={data}", "spans=window:2"])
    inputs = prepare(config)
    assert inputs.example_gen_input_base.endswith("spans-2-3")
    assert sorted(p.name for p in pathlib.Path(inputs.example_gen_input_base).iterdir()) == ["span-2", "span-3"]
    assert inputs.example_gen_pattern == ALL_SPANS_PATTERN


def test_the_schema_copy_is_named_by_its_content(tmp_path):
    config = load_config(None, [f"output_root={tmp_path}"])
    first = prepare(config).schema_file
    edited = tmp_path / "schema.pbtxt"
    edited.write_text(pathlib.Path(config.schema_path).read_text() + "\n# edited\n")
    config.schema_path = str(edited)
    second = prepare(config).schema_file
    assert first != second
    assert pathlib.Path(second).read_text().endswith("# edited\n")
