"""The outcome feed reader: what it keeps, what it counts, and what it says about a bad file."""
from __future__ import annotations

import datetime
import gzip
import pathlib
import subprocess
import sys

import pytest

from pipeline.monitoring import outcomes as outcomes_module
from pipeline.monitoring.outcomes import Outcome, OutcomeError, Outcomes, label, read_outcomes

DEC_1_10H = datetime.datetime(2026, 12, 1, 10, tzinfo=datetime.timezone.utc).timestamp()


def write(folder: pathlib.Path, name: str, text: str | bytes) -> pathlib.Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    return path


def test_tips_and_fare_file(tmp_path):
    path = write(tmp_path, "a.csv", "request_id,observed_at,tips,fare\nr1,100,3.5,10\nr2,200,0,\n")
    result = read_outcomes(str(tmp_path))
    assert result.by_id == {"r1": Outcome(3.5, 10.0, None, 100.0, f"{path}:2"),
                            "r2": Outcome(0.0, None, None, 200.0, f"{path}:3")}
    assert (result.files, result.rows, result.duplicates, result.conflicting, result.skipped_outside_window) == \
        (1, 2, 0, 0, 0)
    assert result.newest_observed_at == 200.0
    # r2's empty fare leaves the label to the request's fare.
    assert label(result.by_id["r1"], None) == 1 and label(result.by_id["r2"], None) is None


def test_big_tip_file_and_a_tips_file_side_by_side(tmp_path):
    write(tmp_path, "labels.csv", "request_id,observed_at,big_tip,fare\nr1,100,1,1000\nr2,100,0,1\n")
    write(tmp_path, "tips.csv", "request_id,observed_at,tips\nr3,100,2\n")
    result = read_outcomes(str(tmp_path))
    assert {key: label(outcome, 5.0) for key, outcome in result.by_id.items()} == {"r1": 1, "r2": 0, "r3": 1}
    # In a big_tip file, fare is just another column: the label is given.
    assert result.by_id["r1"].fare is None and result.by_id["r1"].tips is None
    assert result.files == 2


def test_iso_and_unix_times_are_the_same_instant(tmp_path):
    write(tmp_path, "a.csv", "request_id,observed_at,big_tip\n"
          f"unix,{DEC_1_10H:.0f},1\nunix_float,{DEC_1_10H:.0f}.0,1\nzulu,2026-12-01T10:00:00Z,1\n"
          "no_zone,2026-12-01T10:00:00,1\noffset,2026-12-01T11:00:00+01:00,1\nspace, 2026-12-01 10:00:00Z ,1\n")
    result = read_outcomes(str(tmp_path))
    assert {outcome.observed_at for outcome in result.by_id.values()} == {DEC_1_10H}
    assert len(result.by_id) == 6


def test_bom_crlf_header_case_extra_columns_and_empty_lines(tmp_path):
    write(tmp_path, "a.csv",
          b"\xef\xbb\xbf Request_ID ,OBSERVED_AT,Note,Tips\r\n\r\nr1,100,hello,1.5\r\n  r2 ,100,,2\r\n\r\n")
    result = read_outcomes(str(tmp_path))
    assert sorted(result.by_id) == ["r1", "r2"]
    assert result.by_id["r1"].tips == 1.5 and result.rows == 2


def test_gzipped_files_subfolders_and_hidden_files(tmp_path):
    write(tmp_path, "2026/12/01/a.csv.gz", "request_id,observed_at,big_tip\nr1,100,1\n")
    write(tmp_path, "2026/12/01/.b.csv", "being written")  # a feed's partial file, renamed when complete
    write(tmp_path, ".tmp/c.csv", "being written")
    write(tmp_path, "README.txt", "not an outcome file")
    result = read_outcomes(str(tmp_path))
    assert list(result.by_id) == ["r1"] and result.files == 1
    assert result.by_id["r1"].source.endswith("a.csv.gz:2")


def test_a_duplicate_across_files_is_kept_once_the_earliest_observation_wins(tmp_path):
    write(tmp_path, "a.csv", "request_id,observed_at,tips,fare\nr1,200,9,10\nr2,100,1,10\n")
    late_first = write(tmp_path, "b/c.csv", "request_id,observed_at,tips,fare\nr1,150,8,10\nr2,100,1,10\n")
    write(tmp_path, "d.csv", "request_id,observed_at,tips,fare\nr1,300,7,10\n")
    result = read_outcomes(str(tmp_path))
    assert len(result.by_id) == 2 and result.duplicates == 3 and result.rows == 5
    assert result.by_id["r1"].observed_at == 150 and result.by_id["r1"].source == f"{late_first}:2"
    # A tie goes to the first file in sorted order: a.csv before b/c.csv.
    assert result.by_id["r2"].source.endswith("a.csv:3")
    assert result.conflicting == 0  # every r1 tip is a big tip of a 10 fare
    assert result.newest_observed_at == 150  # of the kept outcomes


def test_duplicates_with_a_different_label_are_counted_as_conflicting(tmp_path):
    write(tmp_path, "a.csv", "request_id,observed_at,big_tip\nsame,100,1\nflip,100,1\n")
    write(tmp_path, "b.csv", "request_id,observed_at,tips,fare\nsame,200,5,10\nflip,200,0,10\n"
          "tips_only,100,1,\ntips_only,200,2,\nequal,100,1,\nequal,200,1,\n")
    result = read_outcomes(str(tmp_path))
    assert result.duplicates == 4
    # flip: 1 then 0; tips_only: two tips for one trip (the label waits for the request's fare).
    assert result.conflicting == 2


def test_conflicts_are_judged_against_the_outcome_finally_kept(tmp_path):
    # Read in this order: t=5 label 0, t=7 label 0, then t=3 label 1, which wins; both others differ from it.
    write(tmp_path, "a.csv", "request_id,observed_at,big_tip\nr1,5,0\nr1,7,0\nr1,3,1\n")
    result = read_outcomes(str(tmp_path))
    assert result.by_id["r1"].big_tip == 1 and result.duplicates == 2 and result.conflicting == 2


def test_window_keeps_since_and_drops_until(tmp_path):
    write(tmp_path, "a.csv", "request_id,observed_at,big_tip\nbefore,99,1\nfirst,100,1\nlast,199.5,1\nat_end,200,1\n"
          "before,50,0\n")
    result = read_outcomes(str(tmp_path), since=100, until=200)
    assert sorted(result.by_id) == ["first", "last"]
    # A skipped line is no duplicate: "before" was never in the window.
    assert (result.rows, result.skipped_outside_window, result.duplicates) == (5, 3, 0)
    assert sorted(read_outcomes(str(tmp_path), since=150).by_id) == ["at_end", "last"]
    assert len(read_outcomes(str(tmp_path), until=100).by_id) == 1
    with pytest.raises(OutcomeError, match="since must be before until"):
        read_outcomes(str(tmp_path), since=200, until=100)


@pytest.mark.parametrize("outcome, request_fare, expected", [
    (Outcome(None, None, 1, 0.0, "f:2"), 100.0, 1),  # big_tip given: the fare does not matter
    (Outcome(None, None, 0, 0.0, "f:2"), None, 0),
    (Outcome(3.0, 10.0, None, 0.0, "f:2"), 100.0, 1),  # the outcome's final fare beats the request's
    (Outcome(3.0, None, None, 0.0, "f:2"), 100.0, 0),  # else the request's fare
    (Outcome(3.0, None, None, 0.0, "f:2"), 10.0, 1),
    (Outcome(2.0, 10.0, None, 0.0, "f:2"), None, 0),  # exactly 20% is not a big tip (the training label's ">")
    (Outcome(3.0, None, None, 0.0, "f:2"), None, None),  # no fare known: no label
])
def test_label(outcome, request_fare, expected):
    assert label(outcome, request_fare) == expected
    assert Outcomes.label(outcome, request_fare) == expected


BAD_FILES = [
    # (file text, line, what the message must also say)
    ("", 1, ["empty"]),
    ("\n\n", 2, ["empty"]),
    ("r1,100,1\n", 1, ["'request_id'", "'observed_at'", "header"]),
    ("request_id,tips\nr1,1\n", 1, ["'observed_at'"]),
    ("request_id,observed_at,fare\nr1,100,10\n", 1, ["neither", "'tips'", "'big_tip'"]),
    ("request_id,observed_at,tips,big_tip\nr1,100,1,1\n", 1, ["both", "'tips'", "'big_tip'"]),
    ("request_id,observed_at,tips,Tips\nr1,100,1,1\n", 1, ["repeats", "'tips'"]),
    ("request_id,observed_at,tips\nr1,100,1\nr2,100\n", 3, ["2 cells", "header has 3"]),
    ("request_id,observed_at,tips\nr1,100,1\n  ,100,1\n", 3, ["column 'request_id'", "empty"]),
    ("request_id,observed_at,tips\nr1,100,abc\n", 2, ["column 'tips'", "'abc'", "number >= 0"]),
    ("request_id,observed_at,tips\nr1,100,-1.5\n", 2, ["column 'tips'", "'-1.5'"]),
    ("request_id,observed_at,tips\nr1,100,nan\n", 2, ["column 'tips'", "'nan'"]),
    ("request_id,observed_at,tips,fare\nr1,100,1,ten\n", 2, ["column 'fare'", "'ten'"]),
    ("request_id,observed_at,tips,fare\nr1,100,1,-3\n", 2, ["column 'fare'", "'-3'"]),
    ("request_id,observed_at,big_tip\nr1,100,2\n", 2, ["column 'big_tip'", "'2'", "0 or 1"]),
    ("request_id,observed_at,big_tip\nr1,100,yes\n", 2, ["column 'big_tip'", "'yes'"]),
    ("request_id,observed_at,big_tip\nr1,yesterday,1\n", 2, ["column 'observed_at'", "'yesterday'", "ISO 8601"]),
    ("request_id,observed_at,big_tip\nr1,1796119200000,1\n", 2, ["column 'observed_at'", "milliseconds"]),
    ("request_id,observed_at,big_tip\nr1,2026-13-01T00:00:00Z,1\n", 2, ["column 'observed_at'"]),
    (b"request_id,observed_at,tips\nr1,100,1\nr2,100,\xff1\n", 3, ["column 'tips'", "0xff", "UTF-8"]),
    ('request_id,observed_at,tips\nr1,100,"1"x\n', 2, ["CSV"]),
    ("request_id,observed_at,tips\nr1,100,1\nrequest_id,observed_at,tips\n", 3, ["repeats the header"]),
]


@pytest.mark.parametrize("text, line, says", BAD_FILES)
@pytest.mark.parametrize("name", ["b.csv", "b.csv.gz"])
def test_a_bad_file_names_the_file_line_column_and_what_to_do(tmp_path, text, line, says, name):
    write(tmp_path, "a.csv", "request_id,observed_at,tips\nfine,100,1\n")  # read before the bad file
    path = write(tmp_path, name, text)
    with pytest.raises(OutcomeError) as raised:
        read_outcomes(str(tmp_path))
    message = str(raised.value)
    assert f"{path}:{line}:" in message
    for words in says:
        assert words in message
    assert "fix or remove the file" in message


def test_a_long_bad_value_is_cut_in_the_message(tmp_path):
    write(tmp_path, "a.csv", f"request_id,observed_at,tips\nr1,100,{'9' * 30}x{'9' * 200}\n")
    message = str(pytest.raises(OutcomeError, read_outcomes, str(tmp_path)).value)
    assert "column 'tips'" in message and "'" + "9" * 30 + "x999999...'" in message and "9" * 41 not in message


def test_a_cut_off_gzip_file_names_the_file(tmp_path):
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"request_id,observed_at,tips\n" + b"r1,100,1\n" * 1000)[:-20])
    message = str(pytest.raises(OutcomeError, read_outcomes, str(tmp_path)).value)
    assert str(path) in message and "cannot be read" in message


def test_a_missing_folder_or_one_without_csv_files_says_what_is_expected(tmp_path):
    with pytest.raises(OutcomeError, match="no such folder.*request_id,observed_at") as raised:
        read_outcomes(str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(raised.value)
    write(tmp_path, "notes.txt", "request_id,observed_at,tips\n")
    with pytest.raises(OutcomeError, match="has no .csv or .csv.gz files") as raised:
        read_outcomes(str(tmp_path))
    assert str(tmp_path) in str(raised.value)


def test_a_header_only_file_is_no_error(tmp_path):
    write(tmp_path, "a.csv", "request_id,observed_at,tips\n")
    result = read_outcomes(str(tmp_path))
    assert result.by_id == {} and result.rows == 0 and result.newest_observed_at is None


def test_importing_the_reader_loads_no_tensorflow():
    code = "import sys, pipeline.monitoring.outcomes; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=pathlib.Path(__file__).parents[4])
    assert done.stdout.strip() == "False"


def test_big_tip_share_equals_the_training_label_s():
    from models import features  # imports TensorFlow: only here

    assert outcomes_module.BIG_TIP_SHARE == features.BIG_TIP_SHARE
