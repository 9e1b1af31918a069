"""An ExampleGen executor for CSV files that converts batches of lines with Arrow, not cell by cell.

TFX's CsvExampleGen builds every tf.Example in Python, cell by cell, after guessing each
column's type from every cell in Python; at 10^6 rows that alone took 1.4x the CPU of the
libraries' whole statistics + transform floor. Here the same work is done a batch of lines
at a time in C++: pyarrow's CSV parser splits the lines into columns, Arrow casts turn the
cells into numbers, and tfx_bsl's RecordBatchToExamplesEncoder writes the tf.Examples.

The examples are the stock executor's (tests/integration/test_fast_csv_example_gen.py):
the same feature names and kinds, an empty cell as a feature with an empty value list, a
column with no value at all as a feature of no kind. They are written in the deterministic
serialization the stock executor hashes for its train/eval split, so every row lands in
the same split as before.

Column types come from the schema packed into the component's custom_config
(`schema_config`); columns it does not type are inferred as the stock executor does
(integer, else float, else string, over the whole split). With the schema, a column's type
no longer depends on the data: a FLOAT column whose cells happen to all be whole numbers
stays FLOAT, where the stock executor would make it INT.

The splits are written a batch at a time. TFX's base executor partitions, reshuffles and
writes one Beam element per example, and on the in-memory runner that Reshuffle alone cost
40% of this executor's CPU. Here each batch is split by TFX's own hash partition, and each
split's examples are written in the order of a fingerprint of their bytes (in_content_order):
as well mixed as a shuffle (no run of consecutive CSV rows), but the same order at every run,
whatever order the runner read the lines in. A Reshuffle gave each run another order, and
the order reaches every consumer that is not order-free: Transform's and StatisticsGen's
quantile sketches give other boundaries for the same values in another order once a split
has more than about 10^4 of them. The split is sorted in one piece, as the in-memory
runner's Reshuffle held it in one piece too.

One difference, the price of reading files in parallel: beam.io.ReadFromText hands out
single lines (and ranges of large files to different workers), so a quoted value may not
span lines; CsvCheck and this executor stop on one with an error saying so. Where Arrow
would read a cell differently from Python's int()/float() (whitespace, '+5', '1_000'),
that batch's column is converted with Python: the same result, only slower.

The header is read as CsvCheck reads it (pipeline/ingest/csv_rules.py): a UTF-8 byte-order
mark, which spreadsheet programs write, is dropped, and names are stripped; the stock executor
keeps both in the feature names. All files of a split must share one header, column order
included (CsvCheck says so first, naming the file to reorder).
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import os
from typing import Any, Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from absl import logging
from tensorflow.core.example import example_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.example_gen import utils, write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor, _PartitionFn
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders import csv_decoder
from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder

ColumnType = csv_decoder.ColumnType
_SCHEMA_TYPES = {schema_pb2.INT: ColumnType.INT, schema_pb2.FLOAT: ColumnType.FLOAT,
                 schema_pb2.BYTES: ColumnType.STRING}
# Cells Arrow's casts read exactly as Python's int() and float() do: plain integers of up to
# 18 digits (always within int64), and decimals with a point or an exponent (which int()
# rejects). Anything else in a batch's column goes through Python, as in the stock executor.
_PLAIN_INT = r"^-?[0-9]{1,18}$"
_PLAIN_FLOAT = r"^-?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^-?[0-9]+[eE][+-]?[0-9]+$"
_PLAIN_NUMBER = f"{_PLAIN_INT}|{_PLAIN_FLOAT}"
BATCH_ROWS = 4096  # lines per Arrow batch: large enough that per-batch costs vanish, small in memory


def schema_config(schema: schema_pb2.Schema) -> example_gen_pb2.CustomConfig:
    """The custom_config that gives this executor its column types (packed, so part of the cache key)."""
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(schema)
    return config


def _schema_types(exec_properties: dict[str, Any]) -> dict[str, ColumnType]:
    text = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not text:
        return {}
    config = proto_utils.json_to_proto(text, example_gen_pb2.CustomConfig())
    schema = schema_pb2.Schema()
    if not config.custom_config.Unpack(schema):
        raise ValueError(f"custom_config holds a {config.custom_config.TypeName()}, not the "
                         "tensorflow.metadata.v0.Schema this executor reads column types from; "
                         "pass fast_csv_example_gen.schema_config(schema)")
    return {feature.name: _SCHEMA_TYPES[feature.type] for feature in schema.feature
            if feature.type in _SCHEMA_TYPES}


def _column_names(path: str) -> list[str]:
    """The header's names; a BOM dropped, as only the first line has one (ReadFromText skips that line)."""
    with fileio.open(path, "rb") as handle:
        line = handle.readline()
    if line.startswith(codecs.BOM_UTF8):
        line = line[len(codecs.BOM_UTF8):]
    return [name.strip() for name in next(csv.reader([line.decode("utf-8").rstrip("\r\n")]), [])]


def _all_match(cells: pa.Array, pattern: str) -> bool:
    """True if every non-empty cell matches (and if there is none)."""
    return pc.all(pc.match_substring_regex(cells, pattern), min_count=0).as_py()


def _parse(lines: list[bytes], column_names: list[str]) -> pa.Table:
    """One batch of CSV lines as string columns; an empty cell (quoted or not) is null."""
    text = b"\n".join(lines)
    # The stock executor joins lines while their quotes are unbalanced; lines read in
    # parallel cannot be joined, so say so rather than split a value.
    if b'"' in text and any(line.count(b'"') % 2 for line in lines):
        line = next(line for line in lines if line.count(b'"') % 2)
        raise ValueError(f"CSV line {line[:200]!r} has an unbalanced quote: a quoted value that spans "
                         "lines, which this ExampleGen does not read; remove the line breaks inside values")
    try:
        return pa_csv.read_csv(
            pa.py_buffer(text),
            read_options=pa_csv.ReadOptions(column_names=column_names, use_threads=False),
            # Blank lines are skipped, as the stock executor does.
            parse_options=pa_csv.ParseOptions(ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(column_names, pa.string()), null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=True))
    except pa.ArrowInvalid as error:  # e.g. "Expected 18 columns, got 17: <the line>"
        raise ValueError(f"CSV lines do not match the header's {len(column_names)} columns: {error}") from None


def _infer(cells: pa.Array) -> ColumnType:
    """The stock executor's type of one batch of a column: INT < FLOAT < STRING, UNKNOWN if empty."""
    if cells.null_count == len(cells):
        return ColumnType.UNKNOWN
    if _all_match(cells, _PLAIN_INT):
        return ColumnType.INT
    if _all_match(cells, _PLAIN_NUMBER):
        return ColumnType.FLOAT
    # tfx_bsl's own per-cell rule, the one the stock executor applies.
    return max(csv_decoder._InferValueType(cell) for cell in cells.drop_null().to_pylist())


def _values(cells: pa.Array, kind: ColumnType) -> pa.Array:
    """The cells converted to `kind`, nulls kept; raises ValueError where Python's int()/float() would."""
    if kind == ColumnType.STRING:
        return cells.cast(pa.large_binary())
    if kind == ColumnType.INT:
        if _all_match(cells, _PLAIN_INT):
            return cells.cast(pa.int64())
        return pa.array([None if cell is None else int(cell) for cell in cells.to_pylist()], pa.int64())
    values = None
    if _all_match(cells, _PLAIN_NUMBER):
        try:
            values = cells.cast(pa.float64())
        except pa.ArrowInvalid:  # e.g. out of range, where Python says inf
            pass
    if values is None:
        values = pa.array([None if cell is None else float(cell) for cell in cells.to_pylist()], pa.float64())
    # Through float64 as Python does, then rounded to the float32 a FloatList holds.
    return values.cast(pa.float32())


def _as_lists(values: pa.Array) -> pa.Array:
    """One value list per row, empty where the cell was empty (as the stock executor writes it)."""
    present = values.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(present, out=offsets[1:])
    return pa.LargeListArray.from_arrays(pa.array(offsets), values.drop_null())


class _EncodeBatch(beam.DoFn):
    """A batch of CSV lines -> serialized tf.Examples."""

    def __init__(self, column_names: list[str], schema_types: dict[str, ColumnType]):
        self._column_names = column_names
        self._schema_types = schema_types
        self._encoder = None

    def setup(self) -> None:
        self._encoder = RecordBatchToExamplesEncoder()

    def process(self, lines: list[bytes], inferred: dict[str, ColumnType] | None = None) -> Iterable[list[bytes]]:
        table = _parse(lines, self._column_names)
        columns = []
        for name, cells in zip(self._column_names, table.columns):
            kind = self._schema_types[name] if name in self._schema_types else inferred[name]
            if kind == ColumnType.UNKNOWN:
                # No cell of the split has a value: the stock executor writes a feature of no kind.
                columns.append(pa.nulls(len(cells), pa.large_list(pa.large_binary())))
                continue
            try:
                values = _values(cells.combine_chunks(), kind)
            except (ValueError, OverflowError) as error:
                raise ValueError(f"CSV column '{name}': {error}; the column's type is {kind.name} "
                                 "(from the schema, or inferred from the data)") from None
            columns.append(_as_lists(values))
        # The encoder writes features in hash-map order, which changes from example to
        # example; the hash split needs each row's bytes to be stable, so they are
        # re-serialized deterministically (the stock executor's bytes, map keys sorted).
        yield [example_pb2.Example.FromString(serialized).SerializeToString(deterministic=True)
               for serialized in self._encoder.encode(pa.RecordBatch.from_arrays(columns, self._column_names))]


class _SplitBatch(beam.DoFn):
    """A batch of serialized examples -> one batch per output split, by TFX's own hash partition."""

    def __init__(self, split_names: list[str], split_config: example_gen_pb2.SplitConfig):
        self._split_names, self._split_config = split_names, split_config
        self._buckets = list(itertools.accumulate(split.hash_buckets for split in split_config.splits))

    def process(self, batch: list[bytes]) -> Iterable[beam.pvalue.TaggedOutput]:
        parts: list[list[bytes]] = [[] for _ in self._split_names]
        for record in batch:
            parts[_PartitionFn(record, len(self._buckets), self._buckets, self._split_config)].append(record)
        for name, part in zip(self._split_names, parts):
            if part:
                yield beam.pvalue.TaggedOutput(name, part)


def _fingerprint(example: bytes) -> bytes:
    return hashlib.blake2b(example, digest_size=16).digest()


def in_content_order(batches: Iterable[list[bytes]]) -> list[bytes]:
    """The examples of all `batches` ordered by a fingerprint of their bytes: mixed, and the same for the same examples.

    The fingerprint is 128 bits, so two different examples tie with probability ~n^2 / 2^129;
    equal examples tie and are interchangeable.
    """
    examples = [example for batch in batches for example in batch]
    examples.sort(key=_fingerprint)
    return examples


def _merge_types(batches: Iterable[dict[str, ColumnType]]) -> dict[str, ColumnType]:
    merged: dict[str, ColumnType] = {}
    for types in batches:
        for name, kind in types.items():
            merged[name] = max(kind, merged.get(name, ColumnType.UNKNOWN))
    return merged


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def _CsvToExampleBatches(pipeline: beam.Pipeline, exec_properties: dict[str, Any],
                         split_pattern: str) -> beam.PCollection:
    """The CSV files of one input split (their header lines skipped) as batches of serialized tf.Examples."""
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    csv_files = fileio.glob(pattern)
    if not csv_files:
        raise RuntimeError(f"Split pattern {pattern} does not match any files.")
    column_names = _column_names(csv_files[0])
    for path in csv_files[1:]:
        names = _column_names(path)
        if names != column_names:
            how = "the same columns in another order" if sorted(names) == sorted(column_names) else "other columns"
            raise RuntimeError(f"Files in same split {pattern} have different header: {path} has {how} "
                               f"than {csv_files[0]}; give all files one header")
    schema_types = _schema_types(exec_properties)
    untyped = [name for name in column_names if name not in schema_types]
    logging.info("Reading %d CSV file(s) %s; column types from the schema, inferred for %s",
                 len(csv_files), pattern, untyped or "none")

    # ReadFromText reads the files (and ranges of large files) in parallel, unlike the
    # stock executor's one element per file; bytes, as pyarrow parses bytes.
    batches = (pipeline
               | "ReadLines" >> beam.io.ReadFromText(pattern, skip_header_lines=1, coder=beam.coders.BytesCoder())
               | "Batch" >> beam.BatchElements(min_batch_size=BATCH_ROWS, max_batch_size=BATCH_ROWS))
    encode = _EncodeBatch(column_names, schema_types)
    if not untyped:
        return batches | "Encode" >> beam.ParDo(encode)
    # Like the stock executor, a first pass over the whole split decides each untyped
    # column's type; the batches of lines (not parsed values) wait for it.
    inferred = (batches
                | "InferBatch" >> beam.Map(lambda lines: {name: _infer(column) for name, column in zip(
                    column_names, _parse(lines, column_names).columns) if name in untyped})
                | "InferSplit" >> beam.CombineGlobally(_merge_types))
    return batches | "Encode" >> beam.ParDo(encode, beam.pvalue.AsSingleton(inferred))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _CsvToSerializedExamples(pipeline: beam.Pipeline, exec_properties: dict[str, Any],
                             split_pattern: str) -> beam.PCollection:
    """One serialized tf.Example per element, as the base executor's GenerateExamplesByBeam takes them."""
    return (pipeline
            | "Batches" >> _CsvToExampleBatches(exec_properties, split_pattern)
            | "Examples" >> beam.FlatMap(lambda batch: batch))


class Executor(BaseExampleGenExecutor):
    """CSV ExampleGen on Arrow; use with FileBasedExampleGen(custom_executor_spec=BeamExecutorSpec(Executor))."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToSerializedExamples

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
        """The base executor's Do with the splits written a batch at a time (see the module doc)."""
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                                 example_gen_pb2.Input())
        output_config = proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
                                                  example_gen_pb2.Output())
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if payload_format not in (None, example_gen_pb2.FORMAT_TF_EXAMPLE):
            raise ValueError(f"this ExampleGen writes tf.Examples only, not payload format {payload_format}")
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        split_names = utils.generate_output_split_names(input_config, output_config)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples.split_names = artifact_utils.encode_split_names(split_names)
        with self._make_beam_pipeline() as pipeline:
            for name, batches in self._batches_by_split(pipeline, exec_properties, input_config,
                                                        output_config, split_names).items():
                path = os.path.join(artifact_utils.get_split_uri([examples], name),
                                    write_split.DEFAULT_TF_RECORD_FILE_NAME)
                # One group per split (a GroupByKey: ToList's combine cost 15% more CPU).
                _ = (batches
                     | f"OneKey[{name}]" >> beam.Map(lambda batch: (None, batch))
                     | f"Gather[{name}]" >> beam.GroupByKey()
                     | f"Order[{name}]" >> beam.FlatMap(lambda group: in_content_order(group[1]))
                     | f"Write[{name}]" >> beam.io.WriteToTFRecord(path, file_name_suffix=".gz"))
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        if file_format:
            examples_utils.set_file_format(examples, write_split.to_file_format_str(file_format))
        logging.info("Examples generated.")

    def _batches_by_split(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any],
                          input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output,
                          split_names: list[str]) -> dict[str, beam.PCollection]:
        """{output split: its batches of serialized examples}, split as the base executor splits."""
        if not output_config.split_config.splits:  # the input is split already: one output per input split
            return {name: pipeline | f"InputToRecord[{name}]" >> _CsvToExampleBatches(exec_properties, split.pattern)
                    for name, split in zip(split_names, input_config.splits)}
        if len(input_config.splits) != 1:
            raise ValueError("with an output split_config, the input must be one split")
        batches = (pipeline
                   | "InputToRecord" >> _CsvToExampleBatches(exec_properties, input_config.splits[0].pattern)
                   | "SplitData" >> beam.ParDo(_SplitBatch(split_names, output_config.split_config)).with_outputs(
                       *split_names))
        return {name: batches[name] for name in split_names}
