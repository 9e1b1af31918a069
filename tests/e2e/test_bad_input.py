"""Bad and shifted input through the real pipeline: every case ends in a clear message.

One pipeline home: a first good run pushes a model, then each case adds span 2 (bad in
its own way), runs, and removes it again. Every case must stop with a message that
names the file, line or feature, and leave the pushed model and the earlier runs in
ML Metadata as they were.
"""
from __future__ import annotations

import io
import json
import pathlib
import re
import shutil
import subprocess

import pytest

from pipeline import metadata
from pipeline.config import load_config
from pipeline.runners.local_runner import run_local
from tests.conftest import SMALL_RUN_SETTINGS, write_span
from tests.data_cases import (
    day_of_week_from_monday,
    derived_time_from_the_next_row,
    drifted,
    edit_column,
    rows,
    shifted_in_time,
    swapped_pickup_coordinates,
    without_column,
    zero_for_missing_dropoff,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

HEADER, GOOD = rows(4, start=0, count=1500)
_, NEXT = rows(4, start=1500, count=1500)  # same distribution as GOOD: an undrifted span


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("bad_input_home")
    write_span(root / "data", 1, [HEADER] + GOOD)
    result, output = _run(root)
    assert result.succeeded and result.pushed_version, output
    return root


def _run(home: pathlib.Path, *extra: str):
    config = load_config(None, [f"data_root={home / 'data'}", f"output_root={home / 'out'}", "spans=latest",
                                *SMALL_RUN_SETTINGS, *extra])
    out = io.StringIO()
    return run_local(config, out=out), out.getvalue()


def _pushed(home: pathlib.Path) -> list[str]:
    return sorted(p.name for p in (home / "out" / "serving" / "taxi-tips").iterdir())


def _states(home: pathlib.Path, run_id: str) -> dict[str, str]:
    store = metadata.open_store(str(home / "out" / "metadata.db"))
    return {node.node_id: node.state for node in metadata.node_runs(store, run_id)}


def _run_span(home: pathlib.Path, content: bytes | list[str] | None, *extra: str, spans: tuple[int, ...] = (2,)):
    """Run with each of `spans` (span 2 unless told) holding `content` (None: an empty folder), then remove them."""
    store_before = metadata.run_ids(metadata.open_store(str(home / "out" / "metadata.db")), "taxi-tips")
    pushed_before = _pushed(home)
    folders = [home / "data" / f"span-{span}" for span in spans]
    try:
        for folder in folders:
            folder.mkdir(parents=True)
            if isinstance(content, bytes):
                (folder / "data.csv").write_bytes(content)
            elif content is not None:
                (folder / "data.csv").write_text("".join(content))
            else:
                (folder / "README.txt").write_text("the files were not copied yet\n")
        result, output = _run(home, *extra)
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    if not result.succeeded:
        # Nothing lost: the pushed versions are as they were, the earlier runs still on record.
        assert _pushed(home) == pushed_before, output
        assert all((home / "out" / "serving" / "taxi-tips" / v / "saved_model.pb").exists() for v in pushed_before)
        store_after = metadata.run_ids(metadata.open_store(str(home / "out" / "metadata.db")), "taxi-tips")
        assert store_after[:len(store_before)] == store_before
        assert "Traceback" not in output
    return result, output


def _replace_cell(lines: list[str], line_number: int, column: str, value: str) -> list[str]:
    """`lines` with one cell changed; line_number counts from 1 with the header as line 1."""
    names = lines[0].strip().split(",")
    cells = lines[line_number - 1].rstrip("\n").split(",")
    cells[names.index(column)] = value
    return lines[:line_number - 1] + [",".join(cells) + "\n"] + lines[line_number:]


def _latin1_line(lines: list[str], line_number: int) -> bytes:
    """The file as UTF-8 but for one line, saved in Latin-1 with an accented company name."""
    lines = _replace_cell(lines, line_number, "company", "Caf\xe9 Taxi")
    return b"".join(line.encode("latin-1" if i == line_number - 1 else "utf-8") for i, line in enumerate(lines))


SPAN = "span-2/data.csv"
CSV_CASES = {
    "empty file": (b"", rf"{SPAN} is empty"),
    "header only": ([HEADER], rf"{SPAN} has a header but no rows"),
    "missing column": (without_column([HEADER] + NEXT, "company"), rf"{SPAN} line 1: the header lacks .*'company'"),
    "extra column": ([HEADER.strip() + ",driver_id\n"] + [line.strip() + ",7\n" for line in NEXT],
                     rf"{SPAN} line 1: the header has column\(s\) the schema does not know: 'driver_id'"),
    "text in a numeric column": (_replace_cell([HEADER] + NEXT, 5, "fare", "n/a"),
                                 rf"{SPAN} line 5: column 'fare' is 'n/a', not a number"),
    "not UTF-8": (_latin1_line([HEADER] + NEXT, 11), rf"{SPAN} line 11: byte 0xe9 is not UTF-8 text"),
    "truncated last line": ([HEADER] + NEXT[:-1] + [NEXT[-1][:20]],
                            rf"{SPAN} line {len(NEXT) + 1}: 6 fields, fewer than the 18 columns"),
    "duplicated header row": ([HEADER] + NEXT[:49] + [HEADER] + NEXT[49:], rf"{SPAN} line 51 repeats the header row"),
    "training span without the label": (without_column([HEADER] + NEXT, "tips"),
                                        rf"{SPAN} line 1: the header lacks the column\(s\) 'tips'"),
    "span folder with no files": (None, r"span-2 has no \.csv files"),
    # As other tools write CSV: one line each, not Python's csv error or a list of 17 columns.
    "stray carriage return": ("".join([HEADER] + NEXT[:6] + [NEXT[6].replace(",", ",\r", 1)] + NEXT[7:]).encode(),
                              rf"{SPAN} line 8: a carriage return inside a line \(mixed line endings\)"),
    "semicolon delimiter": ([line.replace(",", ";") for line in [HEADER] + NEXT],
                            rf"{SPAN} line 1: the header is separated by ';', not ','"),
    "upper-case header": ([HEADER.upper()] + NEXT, rf"{SPAN} line 1: the header names the schema's columns in "
                                                   "another case"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_broken_csv_stops_before_example_gen_naming_file_and_line(home, case):
    content, message = CSV_CASES[case]
    result, output = _run_span(home, content)
    assert not result.succeeded
    assert "CsvCheck failed" in output and re.search(message, output), output
    assert "CsvExampleGen" not in _states(home, result.run_id)


def _gate_stop(home, content, *extra, spans=(2,)):
    result, output = _run_span(home, content, *extra, spans=spans)
    assert not result.succeeded and "DataGate failed" in output, output
    states = _states(home, result.run_id)
    assert states["DataGate"] == "FAILED" and "Transform" not in states
    return output


def _recorded_distances(home: pathlib.Path) -> list[dict]:
    """distances.json of the newest DriftSkewCheck run, found through ML Metadata."""
    store = metadata.open_store(str(home / "out" / "metadata.db"))
    run_id = metadata.run_ids(store, "taxi-tips")[-1]
    node = next(n for n in metadata.node_runs(store, run_id) if n.node_id == "DriftSkewCheck")
    return json.loads((pathlib.Path(node.outputs["distances"][0].uri) / "distances.json").read_text())["distances"]


def test_unknown_category_is_a_schema_finding(home):
    output = _gate_stop(home, [HEADER] + [line.replace(",Cash,", ",Bitcoin,") for line in NEXT])
    assert re.search(r"\[stop\] schema: feature 'payment_type': Unexpected string values.*Bitcoin", output)


def test_all_empty_required_column_is_a_schema_finding(home):
    output = _gate_stop(home, edit_column([HEADER] + NEXT, "fare", lambda value, _: ""))
    assert re.search(r"\[stop\] schema: feature 'fare'", output), output


def test_negative_fares_are_a_schema_finding(home):
    output = _gate_stop(home, edit_column([HEADER] + NEXT, "fare", lambda value, _: f"-{value}"))
    assert re.search(r"\[stop\] schema: feature 'fare': Out-of-range values", output), output


def test_absurd_fares_are_a_schema_finding(home):
    content = edit_column([HEADER] + NEXT, "fare", lambda value, chance: "250000" if chance.random() < 0.01 else value)
    output = _gate_stop(home, content)
    assert re.search(r"\[stop\] schema: feature 'fare': Out-of-range values", output), output


def test_span_far_smaller_than_the_previous_is_a_volume_finding(home):
    output = _gate_stop(home, [HEADER] + NEXT[:100])
    found = re.search(r"\[stop\] volume: dataset: row count ratio to the previous span = ([\d.]+) "
                      r"\(threshold >= 0\.25 and <= 4\.0\), span 2 vs span 1", output)
    assert found and float(found.group(1)) == pytest.approx(100 / 1500, rel=1e-3), output


def test_drifted_span_trips_the_gate_naming_the_shifted_features(home):
    output = _gate_stop(home, drifted([HEADER] + NEXT))
    assert re.search(r"\[stop\] drift: feature 'fare': Jensen-Shannon divergence = 0\.\d+ \(threshold <= 0\.15\), "
                     r"span 2 vs span 1", output), output
    assert "[stop] drift: feature 'payment_type': L-infinity" in output
    assert len(re.findall(r"\[stop\]", output)) == 2
    report = pathlib.Path(re.search(r"Data report: (\S+)", output).group(1))
    assert report.exists()
    # Every compared feature is recorded with its distance, over the threshold or not.
    distances = _recorded_distances(home)
    assert {d["feature"] for d in distances if d["kind"] == "drift"} == {
        "pickup_community_area", "fare", "trip_start_hour", "trip_start_day", "pickup_latitude", "pickup_longitude",
        "dropoff_latitude", "dropoff_longitude", "trip_miles", "pickup_census_tract", "dropoff_census_tract",
        "payment_type", "company", "trip_seconds", "dropoff_community_area", "tips"}
    _assert_report_renders_offline(report)


def test_a_shift_that_persists_is_compared_with_the_last_span_the_gate_let_through(home):
    # Span 3 drifted as span 2 was must not pass as "no change since span 2": span 2 was
    # stopped, so drift is measured against span 1, the last span that got through.
    _gate_stop(home, drifted([HEADER] + NEXT))
    output = _gate_stop(home, drifted([HEADER] + NEXT), spans=(2, 3))
    assert re.search(r"\[stop\] drift: feature 'fare': .* span 3 vs span 1", output), output
    assert "[stop] drift: feature 'payment_type'" in output


def _assert_report_renders_offline(report: pathlib.Path) -> None:
    """The report in headless Chromium with networking off: charts, findings and measures are there."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for this test: `make test` installs it (apt-get install chromium)"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={report.parent}/.chromium",
         "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    shutil.rmtree(report.parent / ".chromium", ignore_errors=True)
    assert "The gate stops this run: 2 finding(s)" in dom
    findings = re.search(r'<table id="findings">.*?</table>', dom, re.S).group(0)
    assert "fare" in findings and "payment_type" in findings and "Jensen-Shannon divergence" in findings
    assert dom.count("<svg") >= 15 and dom.count("<rect") > 100
    assert 'id="distances"' in dom and 'id="schema-diff"' in dom
    assert "http://" not in dom.replace("http://www.w3.org/2000/svg", "") and "https://" not in dom


def test_skewed_serving_data_trips_the_gate(home, tmp_path):
    serving = tmp_path / "requests.csv"
    sample = without_column([HEADER] + NEXT[::3], "tips")
    serving.write_text("".join(edit_column(sample, "trip_miles", lambda value, _: f"{float(value) * 3 + 2:.2f}")))
    output = _gate_stop(home, [HEADER] + NEXT, f"serving_data={serving}")
    assert re.search(rf"\[stop\] skew: feature 'trip_miles': Jensen-Shannon divergence = 0\.\d+ "
                     rf"\(threshold <= 0\.15\), serving data {serving} vs training data", output), output
    assert "[stop] drift" not in output


def _as_a_spreadsheet_saves_it(lines: list[str]) -> bytes:
    """`lines` as "CSV UTF-8" from a spreadsheet: a byte-order mark, \\r\\n line ends, and here the
    columns in another order (reversed)."""
    reordered = [",".join(reversed(line.rstrip("\n").split(","))) for line in lines]
    return b"\xef\xbb\xbf" + "".join(line + "\r\n" for line in reordered).encode()


def test_undrifted_span_and_fair_serving_data_pass_and_a_warned_drift_goes_on(home, tmp_path):
    serving = tmp_path / "requests.csv"
    serving.write_bytes(_as_a_spreadsheet_saves_it(without_column([HEADER] + NEXT[::3], "tips")))
    # Saved by a spreadsheet: accepted by CsvCheck, ExampleGen and the statistics alike.
    result, output = _run_span(home, _as_a_spreadsheet_saves_it([HEADER] + NEXT), f"serving_data={serving}")
    assert result.succeeded, output
    assert _states(home, result.run_id)["DataGate"] == "COMPLETE"
    # The same drifted span that stops a run only warns with on_drift=warn; the run goes on.
    result, output = _run_span(home, drifted([HEADER] + NEXT), "on_drift=warn")
    assert result.succeeded, output
    states = _states(home, result.run_id)
    assert states["DataGate"] == "COMPLETE" and states["Trainer"] == "COMPLETE"
    report = pathlib.Path(re.search(r"Data report: (\S+)", output).group(1)).read_text()
    assert "Nothing stops this run (2 warning(s))" in report and "<td>warn</td><td>drift</td><td>fare</td>" in report


# Data that cannot be true (#21): each case is valid CSV that the schema's types accept, and
# stops at the gate with one line naming the feature, the measured value and the bound.
WEEK = 7 * 24 * 3600


def _stopped_at_the_gate(home, capfd, content) -> str:
    """_gate_stop, and the console (what a user sees) holds no traceback and no absl error line."""
    capfd.readouterr()
    output = _gate_stop(home, content)
    console = "".join(capfd.readouterr())
    assert "Traceback" not in console and "ERROR:absl" not in console, console
    return output


def test_trips_in_the_year_2100_stop_the_run_as_a_time_finding(home, capfd):
    # Shifted by whole weeks, the derived hour and day stay right and the months follow: only the clock rule fails.
    output = _stopped_at_the_gate(home, capfd, shifted_in_time([HEADER] + NEXT, 4435 * WEEK))
    assert re.search(r"\[stop\] time: feature 'trip_start_timestamp': latest trip start = 2101-\d\d-\d\d \d\d:\d\d UTC "
                     r"\(threshold <= 20\d\d-\d\d-\d\d \d\d:\d\d UTC \(the run's time \+ time_tolerance_hours 24\)\), "
                     r"span 2; check the export's time column", output), output
    assert len(re.findall(r"\[stop\]", output)) == 1, output
    report = pathlib.Path(re.search(r"Data report: (\S+)", output).group(1)).read_text()
    rules = re.search(r'<table id="span-rules">.*?</table>', report, re.S).group(0)
    # Every rule is in the report with its measured value and bound; the failed one marked.
    assert "<td>latest trip start</td><td>2101-" in rules and "<td>FAILED</td>" in rules
    assert rules.count("<tr class=") == 7 and "<td>100.00%</td>" in rules and "the earliest in span 1" in rules


def test_a_span_wholly_before_the_previous_one_stops_the_run(home, capfd):
    # 104 weeks earlier: after the data's known start, but every trip before the previous span's first.
    output = _stopped_at_the_gate(home, capfd, shifted_in_time([HEADER] + NEXT, -104 * WEEK))
    found = re.search(r"\[stop\] time: feature 'trip_start_timestamp': latest trip start vs the previous span's "
                      r"earliest = (20\d\d-\d\d-\d\d \d\d:\d\d) UTC \(threshold >= (2015-04-\d\d \d\d:\d\d) UTC \(the "
                      r"earliest in span 1\)\), span 2 vs span 1", output)
    assert found and found.group(1) < found.group(2), output
    assert len(re.findall(r"\[stop\]", output)) == 1, output


def test_derived_time_columns_that_disagree_with_the_timestamp_stop_the_run(home, capfd):
    output = _stopped_at_the_gate(home, capfd, derived_time_from_the_next_row([HEADER] + NEXT))
    for name in ("trip_start_hour", "trip_start_day", "trip_start_month"):
        found = re.search(rf"\[stop\] time: feature '{name}': share of rows agreeing with trip_start_timestamp "
                          rf"\(UTC\) = ([\d.]+)% \(threshold >= 0\.99 \(min_time_agreement\)\), span 2; derive {name} "
                          r"from trip_start_timestamp in UTC", output)
        assert found and float(found.group(1)) < 50, output
    assert len(re.findall(r"\[stop\]", output)) == 3, output


def test_timestamps_in_milliseconds_stop_the_run(home, capfd):
    content = edit_column([HEADER] + NEXT, "trip_start_timestamp", lambda value, _: f"{value}000")
    output = _stopped_at_the_gate(home, capfd, content)
    assert re.search(r"\[stop\] time: feature 'trip_start_timestamp': latest trip start = 4\d{4}-\d\d-\d\d", output)


def test_every_row_twice_stops_the_run_as_repeated_rows(home, capfd):
    output = _stopped_at_the_gate(home, capfd, [HEADER] + NEXT + NEXT)
    assert re.search(r"\[stop\] schema: dataset: share of rows repeating an earlier row = 50\.00% \(threshold <= "
                     r"0\.01 \(max_duplicate_rows\)\), span 2; the same trips twice", output), output
    assert len(re.findall(r"\[stop\]", output)) == 1, output


def test_pickup_latitude_and_longitude_swapped_are_out_of_chicago(home, capfd):
    output = _stopped_at_the_gate(home, capfd, swapped_pickup_coordinates([HEADER] + NEXT, share=0.05))
    for name in ("pickup_latitude", "pickup_longitude"):
        assert re.search(rf"\[stop\] schema: feature '{name}': Out-of-range values", output), output
    assert "[stop] drift" not in output  # 5% of the rows: the drift check alone let this through


def test_day_of_week_numbered_from_monday_stops_the_run(home, capfd):
    # ISO 8601 numbering (1 = Monday) in a 1 = Sunday dataset: every value in its domain, the distribution alike.
    output = _stopped_at_the_gate(home, capfd, day_of_week_from_monday([HEADER] + NEXT))
    assert re.search(r"\[stop\] time: feature 'trip_start_day': share of rows agreeing with trip_start_timestamp "
                     r"\(UTC\) = 0\.00% \(threshold >= 0\.99 \(min_time_agreement\)\), span 2; derive trip_start_day "
                     r"from trip_start_timestamp in UTC \(day of week, 1 = Sunday\)", output), output
    assert len(re.findall(r"\[stop\]", output)) == 1, output


def test_missing_dropoff_positions_written_as_zero_are_out_of_chicago(home, capfd):
    output = _stopped_at_the_gate(home, capfd, zero_for_missing_dropoff([HEADER] + NEXT))
    for name in ("dropoff_latitude", "dropoff_longitude"):
        assert re.search(rf"\[stop\] schema: feature '{name}': Out-of-range values", output), output


def test_census_tracts_without_their_state_and_county_prefix_are_out_of_range(home, capfd):
    # On 5% of the rows (one source's export): too few to move the distribution past its drift threshold.
    content = edit_column([HEADER] + NEXT, "dropoff_census_tract",
                          lambda value, chance: value[5:] if value and chance.random() < 0.05 else value)
    output = _stopped_at_the_gate(home, capfd, content)
    assert re.search(r"\[stop\] schema: feature 'dropoff_census_tract': Out-of-range values", output), output
