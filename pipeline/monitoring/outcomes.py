"""The outcome feed reader: the real tips of trips the model server predicted, read from CSV files.

The feed drops CSV files into a folder, late and in any order, possibly twice, possibly
never. `read_outcomes` reads every file and keeps one outcome per request id.

Files: every `*.csv` and `*.csv.gz` in the folder and its subfolders, read in sorted path
order so that a result never depends on the order the files arrived in. Names starting
with "." (files and folders) are skipped, so a feed can write `.part.csv` and rename it.

Format: UTF-8 (a BOM is accepted), `\\n` or `\\r\\n` line ends, a header line, then one
outcome per line; empty lines are skipped, surrounding whitespace of every cell ignored.
Header names are matched case-insensitively; columns not listed here are ignored.

    request_id   required, not empty: the id the prediction was logged with
    observed_at  required: when the outcome was observed, Unix seconds (a number from 0 to
                 1e11, so milliseconds are refused) or ISO 8601 (`2026-12-01T10:00:00Z`;
                 without a zone, UTC)
    tips         the tip, a number >= 0; or else
    big_tip      the label directly, 0 or 1 (a file has tips or big_tip, not both)
    fare         optional with tips (ignored with big_tip): the trip's final fare, a number
                 >= 0; when the column or the cell is empty the joiner uses the request's fare

A request id seen more than once is kept once: the earliest observed_at wins, a tie goes
to the first file and line in sorted order. Every further line is counted in
`duplicates`, and in `conflicting` too when its label differs from the kept one's (when
both labels wait for the request's fare: when the tips differ; a given label against such
a tip cannot be judged and is not counted). Lines observed outside [since, until) are
counted in `skipped_outside_window` only, never as duplicates.

A bad file stops the read with OutcomeError naming the file, the line, the column and the
value; nothing is returned until every file has read cleanly.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import gc
import gzip
import math
import os
from typing import NamedTuple, TextIO

import numpy as np

# Must equal models/features.py's BIG_TIP_SHARE (a unit test checks); not imported from
# there because that module imports TensorFlow, which takes seconds to load.
BIG_TIP_SHARE = 0.2
# Unix seconds at or above this (year 5138) are a feed giving milliseconds.
MAX_UNIX_SECONDS = 1e11
_WHAT_TO_DO = "fix or remove the file; outcomes already read are not lost: nothing is recorded until all files read"
_FORMAT = ("a header line request_id,observed_at,tips[,fare] or request_id,observed_at,big_tip, "
           "then one outcome per line")
_KNOWN = ("request_id", "observed_at", "tips", "fare", "big_tip")
_INF = math.inf


class OutcomeError(ValueError):
    """The outcome folder or one of its files cannot be read."""


class Outcome(NamedTuple):
    # A NamedTuple, not a dataclass: a million of them are built per read, and tuples are the fastest and smallest.
    tips: float | None
    fare: float | None
    big_tip: int | None
    observed_at: float
    source: str  # "file:line"


def label(outcome: Outcome, request_fare: float | None = None) -> int | None:
    """The big-tip label: `big_tip` when the feed gives it, else whether the tip is more than BIG_TIP_SHARE of
    the fare (the outcome's own fare, else `request_fare`); None when no fare is known."""
    if outcome.big_tip is not None:
        return outcome.big_tip
    fare = outcome.fare if outcome.fare is not None else request_fare
    if fare is None or outcome.tips is None:
        return None
    # In float32, as models/preprocessing.py's big_tip_label computes it: a tip of exactly 20%
    # gets the label training gave it.
    return 1 if np.float32(outcome.tips) > np.float32(fare) * np.float32(BIG_TIP_SHARE) else 0


@dataclasses.dataclass
class Outcomes:
    by_id: dict[str, Outcome]
    files: int
    rows: int  # data lines read: len(by_id) + duplicates + skipped_outside_window
    duplicates: int
    conflicting: int
    skipped_outside_window: int
    newest_observed_at: float | None  # of the outcomes kept; None when there are none

    label = staticmethod(label)


def outcome_files(folder: str) -> list[str]:
    """The feed's files under `folder`, sorted by path."""
    paths = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        paths += [os.path.join(root, name) for name in names
                  if not name.startswith(".") and name.lower().endswith((".csv", ".csv.gz"))]
    return sorted(paths)


def read_outcomes(folder: str, since: float | None = None, until: float | None = None) -> Outcomes:
    """One outcome per request id from every file of the feed; raises OutcomeError on the first bad file."""
    if not os.path.isdir(folder):
        raise OutcomeError(f"{folder}: no such folder; the outcome feed is a folder of CSV files ({_FORMAT})")
    paths = outcome_files(folder)
    if not paths:
        raise OutcomeError(f"{folder} has no .csv or .csv.gz files (subfolders included); the outcome feed drops "
                           f"its files there ({_FORMAT}). Is it the right folder, or has nothing arrived yet?")
    low = -_INF if since is None else since
    high = _INF if until is None else until
    if low >= high:
        raise OutcomeError(f"the window [since={since}, until={until}) is empty; since must be before until")
    by_id: dict[str, Outcome] = {}
    # By id, the _conflict_key of every outcome that lost to an earlier one: conflicts are judged against the
    # final winner, and a key (a shared int or float) is all a heavily duplicated feed keeps of its losers.
    losers: dict[str, list[int | float]] = {}
    rows = skipped = 0
    # A million new tuples make the cyclic collector walk them over and over, for nothing: none holds a cycle.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for path in paths:
            file_rows, file_skipped = _read_file(path, low, high, by_id, losers)
            rows += file_rows
            skipped += file_skipped
    finally:
        if collecting:
            gc.enable()
    duplicates = sum(len(lost) for lost in losers.values())
    conflicting = 0
    for key, lost in losers.items():
        kept = _conflict_key(by_id[key])
        # A label against a tip that waits for the request's fare is undecidable here: not counted.
        conflicting += sum(type(other) is type(kept) and other != kept for other in lost)
    newest = max((outcome.observed_at for outcome in by_id.values()), default=None)
    return Outcomes(by_id=by_id, files=len(paths), rows=rows, duplicates=duplicates, conflicting=conflicting,
                    skipped_outside_window=skipped, newest_observed_at=newest)


def _conflict_key(outcome: Outcome) -> int | float:
    """What duplicates are compared on: the label (an int) when it needs no request fare, else the tip (a float):
    two different tips for one trip are a broken feed even where both give the same label."""
    known = label(outcome)
    return outcome.tips if known is None else known


def _open(path: str) -> TextIO:
    # newline="" lets the csv module see "\r\n" itself; utf-8-sig drops a leading BOM.
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _bad(path: str, line: int, problem: str) -> OutcomeError:
    return OutcomeError(f"{path}:{line}: {problem}; {_WHAT_TO_DO}")


def _bad_cell(path: str, line: int, column: str, value: str, expected: str, row: list[str],
              names: list[str]) -> OutcomeError:
    if [_name(cell) for cell in row] == names:
        return _bad(path, line, "the line repeats the header (files joined with their headers?)")
    return _bad(path, line, f"column '{column}' is {_show(value)}, {expected}")


def _name(cell: str) -> str:
    return cell.replace("\ufeff", "").strip().lower()


def iso_seconds(text: str) -> float | None:
    """Unix seconds of an ISO 8601 time (UTC when it names no zone); None when it is not one."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _header(path: str, reader) -> tuple[list[str], dict[str, int]]:
    for row in reader:
        if any(cell.strip() for cell in row):
            break
    else:
        raise _bad(path, max(reader.line_num, 1), f"the file is empty; it needs {_FORMAT}")
    line = reader.line_num
    names = [_name(cell) for cell in row]
    repeated = sorted({name for name in names if name in _KNOWN and names.count(name) > 1})
    if repeated:
        raise _bad(path, line, f"the header repeats the column(s) {', '.join(map(repr, repeated))}")
    missing = [name for name in ("request_id", "observed_at") if name not in names]
    if missing:
        raise _bad(path, line, f"the header {_show(','.join(row))} lacks the column(s) "
                               f"{', '.join(map(repr, missing))}; the file needs {_FORMAT}")
    if ("tips" in names) == ("big_tip" in names):
        how = "has both" if "tips" in names else "has neither of"
        raise _bad(path, line, f"the header {how} the columns 'tips' and 'big_tip'; a file gives either the tip "
                               "(tips, with an optional fare) or the label (big_tip)")
    return names, {name: names.index(name) for name in _KNOWN if name in names}


def _read_file(path: str, low: float, high: float, by_id: dict[str, Outcome],
               losers: dict[str, list[int | float]]) -> tuple[int, int]:
    """Adds the file's outcomes to by_id; returns (data lines, lines outside the window)."""
    rows = skipped = 0
    reader = None
    try:
        with _open(path) as handle:
            reader = csv.reader(handle, strict=True)
            names, at = _header(path, reader)
            width = len(names)
            i_id, i_at = at["request_id"], at["observed_at"]
            i_tips, i_fare, i_big = at.get("tips"), at.get("fare"), at.get("big_tip")
            prefix = path + ":"
            keep = by_id.setdefault
            iso = iso_seconds  # a local name: this loop runs a million times
            new = tuple.__new__  # builds an Outcome in C, without the Python-level __new__ of a NamedTuple
            # One loop, local names only: this runs a million times per read.
            for row in reader:
                line = reader.line_num
                if len(row) != width:
                    if not row or (len(row) == 1 and not row[0].strip()):  # an empty line
                        continue
                    raise _bad(path, line, f"{len(row)} cells where the header has {width} (a cut-off or badly "
                                           "quoted line, or a comma inside an unquoted value?)")
                rows += 1
                key = row[i_id].strip()
                if not key:
                    raise _bad_cell(path, line, "request_id", row[i_id], "empty; every outcome needs the id "
                                    "its prediction was logged with", row, names)
                cell = row[i_at]
                # A year first is ISO 8601: parsed as such at once, sparing a failed float() and its exception.
                observed = iso(cell) if cell[4:5] == "-" else None
                if observed is None:
                    try:
                        observed = float(cell)
                    except ValueError:
                        observed = iso(cell)
                if observed is None or not 0.0 <= observed < MAX_UNIX_SECONDS:
                    raise _bad_cell(path, line, "observed_at", cell, "not a time after 1970: Unix seconds (below "
                                    "1e11: not milliseconds) or ISO 8601 like 2026-12-01T10:00:00Z", row, names)
                if i_big is None:
                    cell = row[i_tips]
                    try:
                        tips = float(cell)
                    except ValueError:
                        tips = math.nan
                    if not 0.0 <= tips < _INF:  # also false for nan
                        raise _bad_cell(path, line, "tips", cell, "not a number >= 0", row, names)
                    fare = None
                    if i_fare is not None:
                        cell = row[i_fare]
                        if cell.strip():
                            try:
                                fare = float(cell)
                            except ValueError:
                                fare = math.nan
                            if not 0.0 <= fare < _INF:
                                raise _bad_cell(path, line, "fare", cell, "not a number >= 0 (leave the cell "
                                                "empty to use the request's fare)", row, names)
                    big = None
                else:
                    tips = fare = None
                    cell = row[i_big].strip()
                    if cell == "1" or cell == "0":
                        big = int(cell)
                    else:
                        try:
                            big = float(cell)
                        except ValueError:
                            big = math.nan
                        if big != 0.0 and big != 1.0:
                            raise _bad_cell(path, line, "big_tip", row[i_big], "not 0 or 1", row, names)
                        big = int(big)
                if not low <= observed < high:
                    skipped += 1
                    continue
                outcome = new(Outcome, (tips, fare, big, observed, prefix + str(line)))
                kept = keep(key, outcome)  # one lookup for the usual case, a new id
                if kept is outcome:
                    continue
                if observed < kept.observed_at:
                    by_id[key] = outcome
                    losers.setdefault(key, []).append(_conflict_key(kept))
                else:  # a tie keeps the first in sorted file and line order
                    losers.setdefault(key, []).append(_conflict_key(outcome))
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as error:
        raise _bad(path, reader.line_num if reader else 1, f"not readable as CSV ({error})") from None
    except (OSError, EOFError) as error:  # unreadable, or a broken or cut-off .gz
        raise OutcomeError(f"{path}: cannot be read ({error}); {_WHAT_TO_DO}") from None
    return rows, skipped


def _not_utf8(path: str) -> OutcomeError:
    # Only on the error path: find the line again, reading bytes, since the text decoder reads in blocks.
    opener = gzip.open if path.lower().endswith(".gz") else open
    names = None
    with opener(path, "rb") as handle:
        for line, data in enumerate(handle, 1):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                start = error.start
                break
            if names is None and text.strip():
                names = [_name(cell) for cell in next(csv.reader([text]))]
        else:  # not reached: the text decoder failed somewhere
            return OutcomeError(f"{path}: not UTF-8 text; re-save the file as UTF-8, or {_WHAT_TO_DO}")
    cells = next(csv.reader([data.decode("utf-8", errors="replace")]), [""])
    column = next((index for index, cell in enumerate(cells) if "\ufffd" in cell), 0)
    where = f"column '{names[column]}' " if names and column < len(names) else "the line "
    return _bad(path, line, f"{where}has the byte 0x{data[start]:02x}, not UTF-8, in {_show(cells[column])} "
                            "(re-save the file as UTF-8)")
