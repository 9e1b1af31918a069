"""CsvCheck on CSV files as common tools write them: accepted, or refused in one line naming file and line."""
from __future__ import annotations

import re

import pytest

from pipeline.data_validation.statistics_io import load_schema
from pipeline.ingest.csv_rules import CsvError, check_csv, check_spans, read_header, schema_columns
from tests.conftest import SCHEMA, write_span
from tests.data_cases import rows

CURATED = load_schema(str(SCHEMA))
COLUMNS = schema_columns(CURATED)
BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def span():
    """(header line, 5 data lines) of a shipped span."""
    return rows(4, count=5)


def _write(tmp_path, data: bytes, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _refused(path: str, message: str, columns: dict[str, int] = COLUMNS) -> None:
    with pytest.raises(CsvError, match=f"^{re.escape(path)} line {message}"):
        check_csv(path, columns)


def test_a_byte_order_mark_is_dropped(tmp_path, span):
    header, lines = span
    plain = _write(tmp_path, "".join([header] + lines).encode(), "plain.csv")
    marked = _write(tmp_path, BOM + "".join([header] + lines).encode(), "marked.csv")
    assert check_csv(marked, COLUMNS) == check_csv(plain, COLUMNS) == 5
    assert read_header(marked) == read_header(plain) == header.strip().split(",")


def test_a_byte_order_mark_with_windows_line_ends_is_accepted(tmp_path, span):
    header, lines = span
    path = _write(tmp_path, BOM + "".join([header] + lines).replace("\n", "\r\n").encode())
    assert check_csv(path, COLUMNS) == 5


def test_windows_and_unix_line_ends_may_be_mixed(tmp_path, span):
    header, lines = span
    path = _write(tmp_path, "".join([header.replace("\n", "\r\n")] + lines[:2] + [lines[2].replace("\n", "\r\n")]
                                    + lines[3:]).encode())
    assert check_csv(path, COLUMNS) == 5


def test_a_carriage_return_inside_a_line_names_file_and_line(tmp_path, span):
    header, lines = span
    broken = lines[1][:30] + "\r" + lines[1][30:]
    path = _write(tmp_path, "".join([header, lines[0], broken] + lines[2:]).encode())
    _refused(path, r"3: a carriage return inside a line \(mixed line endings\); save the file with one kind of "
                   "line end")


def test_a_carriage_return_inside_a_quoted_value_is_refused_too(tmp_path, span):
    """Arrow, which ExampleGen reads with, would start a row there."""
    header, lines = span
    quoted = '"1\r2"' + lines[3][lines[3].index(","):]
    path = _write(tmp_path, "".join([header] + lines[:3] + [quoted] + lines[4:]).encode())
    _refused(path, "5: a carriage return inside a line")


def test_old_mac_line_ends_are_refused(tmp_path, span):
    header, lines = span
    path = _write(tmp_path, "".join([header] + lines).replace("\n", "\r").encode())
    _refused(path, r"1: the lines end with a carriage return alone")


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_another_delimiter_is_one_line_naming_it(tmp_path, span, delimiter):
    header, lines = span
    path = _write(tmp_path, "".join([header] + lines).replace(",", delimiter).encode())
    _refused(path, f"1: the header is separated by {re.escape(repr(delimiter))}, not ','; save the file as "
                   "comma-separated$")


def test_another_delimiter_and_upper_case_is_the_delimiter_first(tmp_path, span):
    header, lines = span
    path = _write(tmp_path, "".join([header.upper()] + lines).replace(",", ";").encode())
    _refused(path, "1: the header is separated by ';'")


def test_upper_case_names_are_one_line_with_an_example(tmp_path, span):
    header, lines = span
    path = _write(tmp_path, "".join([header.replace("fare", "FARE")] + lines).encode())
    _refused(path, r"1: the header names the schema's columns in another case \(e.g. 'FARE' for 'fare'\); "
                   "use the schema's names")


def test_a_header_in_another_case_that_also_lacks_a_column_lists_both(tmp_path, span):
    header, lines = span
    names = header.strip().split(",")
    renamed = [name.upper() if name == "fare" else name for name in names if name != "tips"]
    path = _write(tmp_path, (",".join(renamed) + "\n").encode() + b"".join(
        ",".join(cell for name, cell in zip(names, line.strip().split(",")) if name != "tips").encode() + b"\n"
        for line in lines))
    _refused(path, r"1: the header lacks the column\(s\) 'fare', 'tips' and has column\(s\) the schema does "
                   "not know: 'FARE'")


def test_any_csv_reader_error_names_file_and_line(tmp_path, span):
    header, lines = span
    path = _write(tmp_path, "".join([header] + lines[:2] + ['"' + "x" * 200_000 + '"\n']).encode())
    _refused(path, r"4: not readable as CSV \(field larger than field limit \(131072\)\); fix or remove the line")


def _reordered(header: str, lines: list[str]) -> list[str]:
    """The same table with its first column moved to the end."""
    def move(line: str) -> str:
        cells = line.rstrip("\n").split(",")  # a quoted comma further on is joined back as it was
        return ",".join(cells[1:] + cells[:1]) + "\n"
    return [move(header)] + [move(line) for line in lines]


def test_columns_in_another_order_than_the_first_file_are_refused_naming_both(tmp_path, span):
    header, lines = span
    first = write_span(tmp_path, 1, [header] + lines)
    other = first.parent / "other.csv"
    other.write_text("".join(_reordered(header, lines)))
    assert check_csv(str(other), COLUMNS) == 5  # on its own the file is fine
    with pytest.raises(CsvError, match=(
            rf"^{re.escape(str(other))} line 1: the columns are those of {re.escape(str(first))} but in another "
            rf"order \(column 1 is 'fare', there column 2\); .* reorder the columns as in")):
        check_spans(str(tmp_path), [1], CURATED)


def test_columns_in_another_order_in_a_later_span_are_refused(tmp_path, span):
    """All spans of a run are one ExampleGen split: one header for all of them."""
    header, lines = span
    write_span(tmp_path, 1, [header] + lines)
    later = write_span(tmp_path, 2, _reordered(header, lines))
    with pytest.raises(CsvError, match=rf"^{re.escape(str(later))} line 1: the columns are those of"):
        check_spans(str(tmp_path), [1, 2], CURATED)
    assert check_spans(str(tmp_path), [2], CURATED) == {2: 5}


def test_files_with_and_without_a_byte_order_mark_share_one_header(tmp_path, span):
    header, lines = span
    write_span(tmp_path, 1, [header] + lines)
    (tmp_path / "span-1" / "marked.csv").write_bytes(BOM + "".join([header] + lines).encode())
    assert check_spans(str(tmp_path), [1], CURATED) == {1: 10}


def test_the_review_check_also_wants_one_header_per_run(tmp_path, span):
    """Without the schema (a schema review), TFDV's statistics still read every file with the first one's header."""
    header, lines = span
    write_span(tmp_path, 1, [header.replace("fare", "fare_usd")] + lines)
    other = tmp_path / "span-1" / "other.csv"
    other.write_text("".join([header] + lines))
    with pytest.raises(CsvError, match=rf"^{re.escape(str(other))} line 1: the header differs from that of .*"
                                       r"\(in one only: 'fare', 'fare_usd'\)"):
        check_spans(str(tmp_path), [1], CURATED, against_schema=False)
