"""Builders of bad and shifted spans for the data-check tests, from the shipped data."""
from __future__ import annotations

import csv
import datetime
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


def _utc_calendar(seconds: int) -> dict[str, str]:
    """The derived time columns of a start time as the shipped data has them: UTC, day of week 1 = Sunday."""
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return {"trip_start_hour": str(when.hour), "trip_start_day": str(when.isoweekday() % 7 + 1),
            "trip_start_month": str(when.month)}


def _edit_rows(lines: list[str], change) -> list[str]:
    """The CSV lines (header first) with `change(row)` applied to each row (a dict, changed in place)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=lines[0].strip().split(","), lineterminator="\n")
    writer.writeheader()
    for row in csv.DictReader(io.StringIO("".join(lines))):
        change(row)
        writer.writerow(row)
    return out.getvalue().splitlines(keepends=True)


def shifted_in_time(lines: list[str], seconds: int) -> list[str]:
    """Every trip started `seconds` later (earlier if negative), the derived columns following: a span that
    is consistent in itself, only elsewhere in time."""
    def shift(row):
        start = int(row["trip_start_timestamp"]) + seconds
        row["trip_start_timestamp"] = str(start)
        row.update(_utc_calendar(start))
    return _edit_rows(lines, shift)


def derived_time_from_the_next_row(lines: list[str]) -> list[str]:
    """trip_start_hour/day/month taken from the next row (rotated by one): columns an export sorted apart."""
    names = ("trip_start_hour", "trip_start_day", "trip_start_month")
    parsed = list(csv.DictReader(io.StringIO("".join(lines))))
    rotated = iter(parsed[1:] + parsed[:1])
    return _edit_rows(lines, lambda row: row.update({name: value for name, value in next(rotated).items()
                                                     if name in names}))


def swapped_pickup_coordinates(lines: list[str], share: float = 0.05) -> list[str]:
    """Pickup latitude and longitude in each other's column on a share of the rows (one source's devices)."""
    chance = random.Random(7)

    def swap(row):
        if chance.random() < share:
            row["pickup_latitude"], row["pickup_longitude"] = row["pickup_longitude"], row["pickup_latitude"]
    return _edit_rows(lines, swap)


def day_of_week_from_monday(lines: list[str]) -> list[str]:
    """trip_start_day numbered 1 = Monday .. 7 = Sunday (ISO 8601) instead of the data's 1 = Sunday."""
    return edit_column(lines, "trip_start_day", lambda value, _: str((int(value) - 2) % 7 + 1))


def zero_for_missing_dropoff(lines: list[str]) -> list[str]:
    """A missing dropoff position written as 0, 0 (a GPS fix that never came) instead of empty cells."""
    def zero(row):
        for name in ("dropoff_latitude", "dropoff_longitude"):
            row[name] = row[name] or "0"
    return _edit_rows(lines, zero)
