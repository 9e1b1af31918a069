"""Span selection: all, latest, one span, or a rolling window of the latest N."""
import json

import pytest
import tensorflow as tf

from pipeline.config import load_config
from pipeline.ingest.spans import list_spans, parse_window, window_folder
from pipeline.pipeline import create_pipeline
from pipeline.prepare import prepare
from tests.conftest import write_span

HEADER = "fare,tips\n"


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    for span in (1, 2, 3, 10):
        write_span(root, span, [HEADER, f"{span}.0,1.0\n"])
    (root / "notes").mkdir()
    return root


def test_spans_are_numbered_folders_in_numeric_order(data_root):
    assert list_spans(str(data_root)) == [1, 2, 3, 10]


def test_no_span_folders_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="has no span-<N>/ folders"):
        list_spans(str(tmp_path))


def test_window_links_the_latest_spans(data_root, tmp_path):
    folder, chosen = window_folder(str(data_root), 2, str(tmp_path / "windows"))
    assert chosen == [3, 10] and folder.endswith("spans-3-10")
    files = sorted(tf.io.gfile.glob(f"{folder}/span-*/*.csv"))
    assert [open(path).read().splitlines()[1] for path in files] == ["10.0,1.0", "3.0,1.0"]
    # Asking again reuses the same folder, so ExampleGen sees the same input.
    assert window_folder(str(data_root), 2, str(tmp_path / "windows"))[0] == folder


@pytest.mark.parametrize("text", ["window:0", "window:x"])
def test_bad_window_size(text):
    with pytest.raises(ValueError, match="window size"):
        parse_window(text)


def test_window_config_points_example_gen_at_the_window(data_root, tmp_path):
    config = load_config(None, [f"data_root={data_root}", f"output_root={tmp_path / 'out'}", "spans=window:3"])
    example_gen = next(c for c in create_pipeline(config, prepare(config)).components if c.id == "CsvExampleGen")
    assert example_gen.exec_properties["input_base"].endswith("span_windows/spans-2-3-10")
    assert json.loads(example_gen.exec_properties["input_config"])["splits"][0]["pattern"] == "span-*/*.csv"
