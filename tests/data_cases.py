"""Builders of bad and shifted spans for the data-check tests, from the shipped data."""
from __future__ import annotations

import csv
import io
import random

from tests.conftest import shipped_lines


def rows(span: int = 4, start: int = 0, count: int = 1500) -> tuple[str, list[str]]:
    """(header line, `count` data lines of a shipped span from `start`)."""
    lines = shipped_lines(span)
    return lines[0], lines[1 + start:1 + start + count]


def edit_column(lines: list[str], column: str, change) -> list[str]:
    """The CSV lines (header first) with `change(value, random)` applied to one column."""
    reader = list(csv.DictReader(io.StringIO("".join(lines))))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=lines[0].strip().split(","), lineterminator="\n")
    writer.writeheader()
    chance = random.Random(7)
    for row in reader:
        row[column] = change(row[column], chance)
        writer.writerow(row)
    return out.getvalue().splitlines(keepends=True)


def drifted(lines: list[str], fare_scale: float = 2.5, cash_share: float = 0.5) -> list[str]:
    """Fares scaled and a share of the trips turned into cash trips: a shifted span, valid by the schema."""
    scaled = edit_column(lines, "fare", lambda value, _: f"{float(value) * fare_scale:.2f}")
    return edit_column(scaled, "payment_type", lambda value, chance: "Cash" if chance.random() < cash_share else value)


def without_column(lines: list[str], column: str) -> list[str]:
    out = io.StringIO()
    reader = csv.DictReader(io.StringIO("".join(lines)))
    names = [name for name in reader.fieldnames if name != column]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(reader)
    return out.getvalue().splitlines(keepends=True)
