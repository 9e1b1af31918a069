"""The Arrow CSV executor writes the same examples, in the same splits, as TFX's stock CsvExampleGen executor.

Both executors run for real (DirectRunner) on the same files; their gzipped TFRecords are
read back and compared split by split, example by example, and byte for byte with the
bytes the stock executor's hash split is computed on.
"""
from __future__ import annotations

import pathlib

import pytest
import tensorflow as tf
from tfx.components.example_gen.csv_example_gen import executor as stock_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from pipeline.data_validation.statistics_io import load_schema
from pipeline.ingest import fast_csv_example_gen
from tests.conftest import SCHEMA, SHIPPED_SPANS

pytestmark = pytest.mark.slow

# Every kind of cell: ints (one column also with '+5' and ' 7', which Python's int() reads
# and Arrow's cast does not), floats (whole numbers, exponents, inf, -0), strings with
# quoted commas, escaped quotes, quoted empties and spaces, a column that is never filled,
# one that mixes numbers and words, and empty cells everywhere; a blank line; two files.
HEADER = "id,count,odd_int,price,mixed,name,never,tiny\n"
FILE_A = [
    HEADER,
    '1,10,+5,1.5,3,"Smith, John",,0\n',
    '2,,7,,x,"say ""hi""",,1\n',
    '3,-3, 7 ,2,4.5,,,\n',
    "\n",
    '4,0,8,1e3,,"",,2\n',
]
FILE_B = [
    HEADER,
    '5,12345678901234,,inf,7,plain,,3\n',
    '6,7,-0,-0,,"a,b,c",,4\n',
    '7,8,9,3.25,z, spaced ,,5\n',
]


HASH_SPLIT = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)]))


def _run(executor_class, input_base: pathlib.Path, pattern: str | dict[str, str], output: pathlib.Path,
         custom_config: example_gen_pb2.CustomConfig | None = None) -> dict[str, list[bytes]]:
    """Runs one executor's Do as ExampleGen does; returns {split: serialized examples as written}.

    `pattern` is one input split, hash-split 2:1 into train and eval, or {split: pattern}
    for input that comes split already.
    """
    examples = standard_artifacts.Examples()
    examples.uri = str(output)
    presplit = isinstance(pattern, dict)
    splits = pattern.items() if presplit else [("single_split", pattern)]
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: str(input_base),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name=name, pattern=glob) for name, glob in splits])),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Output() if presplit else HASH_SPLIT),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    if custom_config is not None:
        exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY] = proto_utils.proto_to_json(custom_config)
    executor_class().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    written = {}
    for split in ("train", "eval"):
        files = sorted(str(path) for path in (output / f"Split-{split}").glob("*.gz"))
        written[split] = sorted(record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    return written


def _deterministic(serialized: bytes) -> bytes:
    return tf.train.Example.FromString(serialized).SerializeToString(deterministic=True)


def _by_key(serialized: list[bytes], key: str) -> dict:
    """{value of the key feature: tf.Example} for a readable per-example comparison."""
    examples = [tf.train.Example.FromString(data) for data in serialized]
    by_key = {}
    for example in examples:
        feature = example.features.feature[key]
        by_key[tuple(feature.int64_list.value) or tuple(feature.float_list.value)] = example
    assert len(by_key) == len(examples), f"{key} does not identify the examples"
    return by_key


def _assert_same(stock: dict[str, list[bytes]], fast: dict[str, list[bytes]], key: str | None = None) -> None:
    for split in ("train", "eval"):
        assert stock[split], f"no {split} examples: the comparison would prove nothing"
        if key:
            assert _by_key(fast[split], key) == _by_key(stock[split], key), split
        # The stock executor splits on each example's deterministic serialization (and writes
        # a non-deterministic one); the fast one writes exactly the bytes the split hashes.
        assert fast[split] == sorted(_deterministic(data) for data in stock[split]), split


def test_same_examples_as_stock_executor_on_every_kind_of_cell(tmp_path):
    data = tmp_path / "data" / "span-1"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("".join(FILE_A))
    (data / "b.csv").write_text("".join(FILE_B))
    stock = _run(stock_executor.Executor, tmp_path / "data", "span-1/*.csv", tmp_path / "stock")
    fast = _run(fast_csv_example_gen.Executor, tmp_path / "data", "span-1/*.csv", tmp_path / "fast")
    _assert_same(stock, fast, "id")

    examples = _by_key(fast["train"] + fast["eval"], "id")
    assert len(examples) == 7  # the blank line is no example
    first, second = examples[(1,)].features.feature, examples[(2,)].features.feature
    assert first["name"].bytes_list.value == [b"Smith, John"] and second["name"].bytes_list.value == [b'say "hi"']
    # An empty cell is a feature with an empty list of the column's kind; a column that is
    # never filled is a feature of no kind.
    assert second["count"].HasField("int64_list") and not second["count"].int64_list.value
    assert first["never"].WhichOneof("kind") is None
    assert first["odd_int"].int64_list.value == [5] and first["price"].float_list.value == [1.5]
    assert first["mixed"].bytes_list.value == [b"3"]  # a column of numbers and words is strings


def test_input_split_already_is_written_split_for_split_as_the_stock_executor_does(tmp_path):
    (tmp_path / "train.csv").write_text("".join(FILE_A))
    (tmp_path / "eval.csv").write_text("".join(FILE_B))
    splits = {"train": "train.csv", "eval": "eval.csv"}
    stock = _run(stock_executor.Executor, tmp_path, splits, tmp_path / "stock")
    fast = _run(fast_csv_example_gen.Executor, tmp_path, splits, tmp_path / "fast")
    _assert_same(stock, fast, "id")
    assert sorted(_by_key(fast["eval"], "id")) == [(5,), (6,), (7,)]


def test_same_examples_as_stock_executor_on_a_shipped_span_typed_by_the_schema(tmp_path):
    """The pipeline's way: types from the curated schema, which the shipped data agrees with."""
    config = fast_csv_example_gen.schema_config(load_schema(str(SCHEMA)))
    stock = _run(stock_executor.Executor, SHIPPED_SPANS, "span-1/*.csv", tmp_path / "stock")
    fast = _run(fast_csv_example_gen.Executor, SHIPPED_SPANS, "span-1/*.csv", tmp_path / "fast", config)
    assert len(stock["train"]) + len(stock["eval"]) == 3088
    _assert_same(stock, fast)


def test_schema_types_win_over_what_the_cells_look_like(tmp_path):
    """A FLOAT column of whole numbers stays FLOAT (the stock executor would guess INT)."""
    (tmp_path / "data.csv").write_text("fare,tips\n5,0\n7,\n")
    config = fast_csv_example_gen.schema_config(load_schema(str(SCHEMA)))
    fast = _run(fast_csv_example_gen.Executor, tmp_path, "data.csv", tmp_path / "fast", config)
    examples = _by_key(fast["train"] + fast["eval"], "fare")
    assert examples[(5.0,)].features.feature["tips"].float_list.value == [0.0]
    assert examples[(7.0,)].features.feature["tips"].HasField("float_list")


def test_a_value_the_schema_type_cannot_hold_names_the_column(tmp_path):
    (tmp_path / "data.csv").write_text("fare,trip_start_hour\n5.5,noon\n")
    config = fast_csv_example_gen.schema_config(load_schema(str(SCHEMA)))
    with pytest.raises(Exception, match="column 'trip_start_hour'.*noon"):
        _run(fast_csv_example_gen.Executor, tmp_path, "data.csv", tmp_path / "fast", config)


def test_a_quoted_value_across_lines_stops_with_a_clear_error(tmp_path):
    (tmp_path / "data.csv").write_text('id,name\n1,"two\nlines"\n')
    with pytest.raises(Exception, match="spans lines"):
        _run(fast_csv_example_gen.Executor, tmp_path, "data.csv", tmp_path / "fast")


def _shipped_sample(count: int = 60) -> tuple[str, list[str]]:
    lines = (SHIPPED_SPANS / "span-4" / "data.csv").read_text().splitlines(keepends=True)
    return lines[0], lines[1:1 + count]


def test_a_byte_order_mark_gives_the_examples_of_the_file_without_it(tmp_path):
    """Spreadsheet programs' "CSV UTF-8"; the mark would otherwise be part of the first feature's name."""
    header, lines = _shipped_sample()
    (tmp_path / "plain").mkdir()
    (tmp_path / "marked").mkdir()
    (tmp_path / "plain" / "data.csv").write_text("".join([header] + lines))
    (tmp_path / "marked" / "data.csv").write_bytes(b"\xef\xbb\xbf" + "".join([header] + lines).encode())
    # Two files of one split, one with the mark: one header, not "different header".
    (tmp_path / "marked" / "more.csv").write_text("".join([header] + lines))
    config = fast_csv_example_gen.schema_config(load_schema(str(SCHEMA)))
    plain = _run(fast_csv_example_gen.Executor, tmp_path / "plain", "data.csv", tmp_path / "out-plain", config)
    marked = _run(fast_csv_example_gen.Executor, tmp_path / "marked", "data.csv", tmp_path / "out-marked", config)
    assert marked == plain and plain["train"] and plain["eval"]
    assert "pickup_community_area" in tf.train.Example.FromString(marked["train"][0]).features.feature
    both = _run(fast_csv_example_gen.Executor, tmp_path / "marked", "*.csv", tmp_path / "out-both", config)
    assert len(both["train"]) + len(both["eval"]) == 2 * len(lines)


def test_a_file_with_its_columns_in_another_order_gives_the_same_examples(tmp_path):
    """The executor reads a file by its header's names; CsvCheck still wants one order for all files of a run."""
    header, lines = _shipped_sample()

    def moved(line: str) -> str:  # the first column (a number) to the end
        cells = line.rstrip("\n").split(",")
        return ",".join(cells[1:] + cells[:1]) + "\n"

    (tmp_path / "plain.csv").write_text("".join([header] + lines))
    (tmp_path / "moved.csv").write_text("".join(moved(line) for line in [header] + lines))
    config = fast_csv_example_gen.schema_config(load_schema(str(SCHEMA)))
    plain = _run(fast_csv_example_gen.Executor, tmp_path, "plain.csv", tmp_path / "out-plain", config)
    assert _run(fast_csv_example_gen.Executor, tmp_path, "moved.csv", tmp_path / "out-moved", config) == plain
    with pytest.raises(Exception, match="csv has the same columns in another order than"):
        _run(fast_csv_example_gen.Executor, tmp_path, "*.csv", tmp_path / "out-both", config)


def _written(output: pathlib.Path) -> dict[str, list[bytes]]:
    """{split: serialized examples in the order the files hold them}."""
    return {split: [record.numpy() for record in tf.data.TFRecordDataset(
        sorted(str(path) for path in (output / f"Split-{split}").glob("*.gz")), compression_type="GZIP")]
        for split in ("train", "eval")}


def test_the_examples_are_written_in_one_order_whatever_order_the_lines_come_in(tmp_path):
    """Transform's and StatisticsGen's quantile sketches depend on the order: the same rows give the same files."""
    header, lines = _shipped_sample(600)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "data.csv").write_text("".join([header] + lines))
    # The same rows backwards, in two files.
    backwards = lines[::-1]
    (tmp_path / "two" / "a.csv").write_text("".join([header] + backwards[:250]))
    (tmp_path / "two" / "b.csv").write_text("".join([header] + backwards[250:]))
    config = fast_csv_example_gen.schema_config(load_schema(str(SCHEMA)))
    _run(fast_csv_example_gen.Executor, tmp_path / "one", "*.csv", tmp_path / "out-one", config)
    _run(fast_csv_example_gen.Executor, tmp_path / "one", "*.csv", tmp_path / "out-again", config)
    _run(fast_csv_example_gen.Executor, tmp_path / "two", "*.csv", tmp_path / "out-two", config)
    first = _written(tmp_path / "out-one")
    assert first["train"] and first["eval"]
    assert _written(tmp_path / "out-again") == first
    assert _written(tmp_path / "out-two") == first
    # Mixed: in the order of neither file, nor of the bytes.
    assert first["train"] != sorted(first["train"])
