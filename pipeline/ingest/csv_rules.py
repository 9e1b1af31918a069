"""The checks CsvCheck runs: every CSV file of the spans a run uses, read against the schema.

CsvExampleGen fails on a broken file deep inside Beam with a message that names neither
the file nor the line, or worse, guesses a different column type and carries on. This
check runs first and names the file, the line and the column, and what to do about it.
What is valid CSV but unusual data (a new category, an absurd fare, drift) is left to
the statistics-based checks, which the data gate acts on.

CSV forms accepted, as spreadsheet programs and scripts write them: a UTF-8 byte-order
mark ("CSV UTF-8") is dropped, here and in ExampleGen (fast_csv_example_gen.py); lines may
end in LF or CR LF, mixed. Refused with one line naming the file and line: a carriage
return not followed by LF (a line break ExampleGen's line reader does not see but Arrow
splits on), a header separated by ';', tab or '|', a header with the schema's names in
another case, and any other error of Python's csv reader.

The files a run reads must share one header, column order included: ExampleGen (TFX's and
this project's) and TFDV's CSV statistics (SpanStatisticsGen, the schema review) take the
column names from the first file for all of them. So a file with the same columns in
another order is refused here, naming the file to copy the order from, rather than read
by name in one reader and by position, or not at all, in the others.
"""
from __future__ import annotations

import codecs
import csv
import io
import os
import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from pyarrow import csv as pa_csv
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.ingest.spans import span_files

NUMERIC_TYPES = {schema_pb2.INT: "an integer", schema_pb2.FLOAT: "a number"}
OTHER_DELIMITERS = (";", "\t", "|")
# A carriage return that does not end a line: Python's csv reader stops on it, Arrow starts a row.
LONE_CR = re.compile(rb"\r(?!\n)")


class CsvError(ValueError):
    """A span file that ExampleGen cannot read correctly."""


def schema_columns(schema: schema_pb2.Schema) -> dict[str, int]:
    """{column name: schema type} of every feature the training data must have."""
    return {feature.name: feature.type for feature in schema.feature}


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CsvError(f"{path} line {line}: byte 0x{data[error.start]:02x} is not UTF-8 text; "
                       "re-save the file as UTF-8") from None


def _without_bom(data: bytes) -> bytes:
    # Spreadsheet programs' "CSV UTF-8" starts with a byte-order mark, which is no part of the first name.
    return data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data


def read_header(path: str) -> list[str]:
    """The column names of a CSV file as the checks and ExampleGen read them (BOM dropped, names stripped)."""
    with tf.io.gfile.GFile(path, "rb") as handle:
        line = _without_bom(handle.readline()).decode("utf-8", errors="replace")
    return [name.strip() for name in next(csv.reader([line.rstrip("\r\n")]), [])]


def _check_line_ends(path: str, data: bytes) -> None:
    found = LONE_CR.search(data)
    if not found:
        return
    if b"\n" not in data:
        raise CsvError(f"{path} line 1: the lines end with a carriage return alone (old Mac line ends); "
                       "save the file with \\n or \\r\\n line ends")
    line = data.count(b"\n", 0, found.start()) + 1
    raise CsvError(f"{path} line {line}: a carriage return inside a line (mixed line endings); "
                   "save the file with one kind of line end (\\n or \\r\\n)")


def _header_form(header_line: str, header: list[str], columns: dict[str, int], against_schema: bool) -> str | None:
    """What is wrong with the header's form, if its names are the schema's written another way; else None.

    These stand in for the list of every column 'missing', which hides the one cause.
    """
    known = set(columns)
    for delimiter in OTHER_DELIMITERS:
        names = [name.strip().lower() for name in next(csv.reader([header_line], delimiter=delimiter))]
        # Only if that delimiter finds more of the schema's columns than the comma does.
        if len(names) > 1 and len(known.intersection(names)) > len(known.intersection(header)):
            return f"the header is separated by {delimiter!r}, not ','; save the file as comma-separated"
    by_lower = {name.lower(): name for name in columns}
    wrong_case = [name for name in header if name not in known and name.lower() in by_lower]
    if against_schema and wrong_case and {name.lower() for name in header} == set(by_lower):
        example = wrong_case[0]
        return (f"the header names the schema's columns in another case (e.g. {example!r} for "
                f"{by_lower[example.lower()]!r}); use the schema's names as written (lower case)")
    return None


def _check_header(path: str, header: list[str], columns: dict[str, int]) -> None:
    missing = [name for name in columns if name not in header]
    extra = [name for name in header if name not in columns]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"lacks the column(s) {', '.join(map(repr, missing))}")
    if extra:
        problems.append(f"has column(s) the schema does not know: {', '.join(map(repr, extra))}")
    if duplicated:
        problems.append(f"repeats the column(s) {', '.join(map(repr, duplicated))}")
    if problems:
        raise CsvError(f"{path} line 1: the header {' and '.join(problems)}. A training span needs exactly "
                       "the columns of schema/schema.pbtxt (the label 'tips' included); fix the file, or "
                       "change the schema and models/features.py if the data really changed.")


def _rows_if_clean(data: bytes, header: list[str], columns: dict[str, int], against_schema: bool) -> int | None:
    """The row count when Arrow finds nothing the checks below would stop on; None to look line by line.

    Arrow parses in C++, many times faster than the line-by-line checks, which are kept
    for the exact file, line and column of a problem. Everything here is at least as
    strict as they are: any doubt (a parse error, a blank line, a quoted line break, a
    value that is not a finite number) hands the file to them.
    """
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(column_names=[f"c{i}" for i in range(len(header))], skip_rows=1),
            parse_options=pa_csv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={f"c{i}": pa.string() for i in range(len(header))}))
    except (pa.ArrowInvalid, ValueError):
        return None
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    # Arrow reads a blank line as a row of empty cells; the line checks stop on it.
    if table.num_rows == 0 or table.num_rows != lines - 1 or b"\n\n" in data or b"\n\r\n" in data:
        return None
    by_name = dict(zip(header, table.columns))
    # A row that may repeat the header (its first cell is the first column's name) is looked at line by line.
    if pc.any(pc.equal(pc.utf8_trim_whitespace(table.column(0)), header[0])).as_py():
        return None
    for name, kind in columns.items():
        if kind not in NUMERIC_TYPES or not against_schema:
            continue
        cells = pc.utf8_trim_whitespace(by_name[name])
        filled = pc.filter(cells, pc.not_equal(cells, ""))
        try:
            values = filled.cast(pa.float64())
        except pa.ArrowInvalid:
            return None
        if len(values) == 0:
            continue
        if not pc.all(pc.is_finite(values)).as_py():
            return None
        if kind == schema_pb2.INT and not pc.all(pc.equal(pc.floor(values), values)).as_py():
            return None
    return table.num_rows


def check_csv(path: str, columns: dict[str, int], against_schema: bool = True) -> int:
    """Raises CsvError naming the file, line and column of the first problem; returns the row count.

    With `against_schema` off, only what makes the file unreadable is checked (encoding,
    line ends, delimiter, field counts), so that a schema review can see new columns and changed types.
    """
    return _check_file(path, columns, against_schema)[1]


def _check_file(path: str, columns: dict[str, int], against_schema: bool) -> tuple[list[str], int]:
    """(header, row count) of a file that passes the checks of check_csv."""
    with tf.io.gfile.GFile(path, "rb") as handle:
        data = _without_bom(handle.read())
    if not data.strip():
        raise CsvError(f"{path} is empty: a span file needs a header line and at least one row")
    text = _decode(path, data)
    _check_line_ends(path, data)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [name.strip() for name in next(reader)]
        form = _header_form(text.split("\n", 1)[0].rstrip("\r"), header, columns, against_schema)
        if form:
            raise CsvError(f"{path} line 1: {form}")
        if against_schema:
            _check_header(path, header, columns)
        rows = _rows_if_clean(data, header, columns, against_schema)
        if rows is not None:
            return header, rows
        line = reader.line_num
        for fields in reader:
            if reader.line_num > line + 1:
                # ExampleGen reads one row per line, so that a file can be read by several workers.
                raise CsvError(f"{path} line {line + 1}: a quoted value spans lines {line + 1}-{reader.line_num}; "
                               "remove the line breaks inside the value")
            line = reader.line_num
            if len(fields) != len(header):
                side = "fewer" if len(fields) < len(header) else "more"
                raise CsvError(f"{path} line {reader.line_num}: {len(fields)} fields, {side} than the {len(header)} "
                               "columns of the header (an empty, cut-off or badly quoted line?); "
                               "fix or remove the line")
    except csv.Error as error:
        # Whatever Python's csv reader stops on, say where (its own message names neither file nor line).
        raise CsvError(f"{path} line {reader.line_num}: not readable as CSV ({error}); fix or remove the line") \
            from None
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[])
    if frame.empty:
        raise CsvError(f"{path} has a header but no rows")
    # Line numbers below: row i of the frame is line i + 2 of the file (line 1 is the header).
    repeated = (frame == frame.columns).all(axis=1)
    if repeated.any():
        raise CsvError(f"{path} line {int(repeated.idxmax()) + 2} repeats the header row (files joined "
                       "with their headers?); remove that line")
    for name, kind in columns.items():
        if kind not in NUMERIC_TYPES or not against_schema:
            continue
        cells = frame[name].str.strip()
        filled = cells[cells != ""]
        parsed = pd.to_numeric(filled, errors="coerce")
        bad = parsed.isna()
        if kind == schema_pb2.INT:
            bad |= parsed % 1 != 0
        if bad.any():
            row = bad.idxmax()
            raise CsvError(f"{path} line {row + 2}: column '{name}' is {filled[row]!r}, not "
                           f"{NUMERIC_TYPES[kind]} as the schema says; fix the value or leave the cell empty")
    return header, len(frame)


def check_spans(data_root: str, spans: list[int], schema: schema_pb2.Schema,
                against_schema: bool = True) -> dict[int, int]:
    """{span: rows} after checking every file of every span; raises CsvError on the first problem."""
    columns = schema_columns(schema)
    rows = {}
    first: tuple[str, list[str]] | None = None  # (path, header) of the run's first file
    for span in spans:
        files = span_files(data_root, span)
        if not files:
            raise CsvError(f"{os.path.join(data_root, f'span-{span}')} has no .csv files; put the span's "
                           "CSV files there, or remove the empty folder")
        rows[span] = 0
        for path in files:
            header, count = _check_file(path, columns, against_schema)
            rows[span] += count
            first = first or (path, header)
            _check_same_header(path, header, *first)
    return rows


def _check_same_header(path: str, header: list[str], first_path: str, first_header: list[str]) -> None:
    """Every file of a run must have the first file's header: its readers all take the first file's (see above)."""
    if header == first_header:
        return
    if sorted(header) == sorted(first_header):
        moved = next(name for name, other in zip(header, first_header) if name != other)
        raise CsvError(f"{path} line 1: the columns are those of {first_path} but in another order "
                       f"(column {header.index(moved) + 1} is {moved!r}, there column "
                       f"{first_header.index(moved) + 1}); the files a run reads share one header, "
                       f"so reorder the columns as in {first_path}")
    differ = sorted(set(header).symmetric_difference(first_header))
    raise CsvError(f"{path} line 1: the header differs from that of {first_path} (in one only: "
                   f"{', '.join(map(repr, differ)) or 'a repeated column'}); the files a run reads share one header")
