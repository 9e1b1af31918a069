"""Row-level measures of a span: derived time columns vs the timestamp, repeated rows (real TFDV pass)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.data_validation import row_measures
from pipeline.data_validation.row_measures import AGREEMENT, DUPLICATES, custom_stat, derived_from_timestamp
from pipeline.data_validation.statistics_io import csv_statistics, load_schema
from tests.conftest import REPO
from tests.data_cases import edit_column, rows

SCHEMA = load_schema(str(REPO / "schema" / "schema.pbtxt"))


@pytest.mark.parametrize("seconds, hour, day, month", [
    (1427870700, 6, 4, 4),  # 2015-04-01 06:45 UTC, a Wednesday
    (1356998400, 0, 3, 1),  # 2013-01-01 00:00 UTC, a Tuesday
    (1483228799, 23, 7, 12),  # 2016-12-31 23:59:59 UTC, a Saturday
    (1357430400, 0, 1, 1),  # 2013-01-06 00:00 UTC, a Sunday
])
def test_derived_values_are_the_utc_hour_day_of_week_from_sunday_and_month(seconds, hour, day, month):
    derived = derived_from_timestamp(np.array([seconds]))
    assert (derived["trip_start_hour"][0], derived["trip_start_day"][0], derived["trip_start_month"][0]) == \
        (hour, day, month)


def test_timestamps_in_milliseconds_are_measured_not_an_error():
    # 2015-04-01 in milliseconds read as seconds: the year 47217, past pandas' datetimes.
    derived = derived_from_timestamp(np.array([1427870700000]))
    assert 0 <= derived["trip_start_hour"][0] <= 23 and 1 <= derived["trip_start_month"][0] <= 12


def _statistics(tmp_path, lines: list[str]):
    path = tmp_path / "data.csv"
    path.write_text("".join(lines))
    return csv_statistics([str(path)], SCHEMA, row_measures=True)


def test_a_shipped_span_agrees_fully_and_repeats_no_row(tmp_path):
    header, lines = rows(4, count=400)
    statistics = _statistics(tmp_path, [header] + lines)
    for name in row_measures.DERIVED:
        assert custom_stat(statistics, name, AGREEMENT) == 1.0
    assert custom_stat(statistics, row_measures.TIMESTAMP, DUPLICATES) == 0.0
    # TFDV's own statistics of the same features are still there beside the custom ones.
    hour = next(f for f in statistics.features if f.path.step == ["trip_start_hour"])
    assert hour.num_stats.max == 23 and statistics.num_examples == 400


def test_hours_written_in_chicago_time_disagree_and_every_row_twice_is_half_repeated(tmp_path):
    header, lines = rows(4, count=400)
    # America/Chicago is 5 or 6 hours behind UTC: no hour agrees.
    local = edit_column([header] + lines, "trip_start_hour", lambda value, _: str((int(value) - 6) % 24))
    statistics = _statistics(tmp_path, local + local[1:])
    assert custom_stat(statistics, "trip_start_hour", AGREEMENT) == 0.0
    assert custom_stat(statistics, "trip_start_day", AGREEMENT) == 1.0
    assert custom_stat(statistics, row_measures.TIMESTAMP, DUPLICATES) == pytest.approx(0.5)


def test_a_share_of_wrong_months_is_measured_as_that_share(tmp_path):
    header, lines = rows(4, count=400)
    wrong = edit_column([header] + lines, "trip_start_month",
                        lambda value, chance: str(int(value) % 12 + 1) if chance.random() < 0.1 else value)
    changed = sum(a != b for a, b in zip(wrong[1:], edit_column([header] + lines, "trip_start_month",
                                                                 lambda value, _: value)[1:]))
    statistics = _statistics(tmp_path, wrong)
    assert custom_stat(statistics, "trip_start_month", AGREEMENT) == pytest.approx(1 - changed / 400)
