"""The synthetic span generator: same shape as the shipped data, deterministic, drift knobs do what they say."""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pandas as pd
import pytest

from data import synthetic
from pipeline.cli.main import main as cli
from tests.conftest import SHIPPED_SPANS

ROWS = 30_000


@pytest.fixture(scope="module")
def source() -> synthetic.SourceData:
    return synthetic.SourceData.load()


@pytest.fixture(scope="module")
def generated(source) -> pd.DataFrame:
    return synthetic.generate(ROWS, seed=1, source=source)


def _read(path: pathlib.Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column].replace("", np.nan))


def _big_tip_rate(frame: pd.DataFrame) -> float:
    return float((_numbers(frame, "tips") > 0.2 * _numbers(frame, "fare")).mean())


def test_written_span_has_the_shipped_header_and_row_count(tmp_path):
    paths = synthetic.write_spans(tmp_path, rows=500, spans=2, seed=3)
    assert [path.relative_to(tmp_path).as_posix() for path in paths] == ["span-1/data.csv", "span-2/data.csv"]
    shipped_header = (SHIPPED_SPANS / "span-1" / "data.csv").open().readline()
    for path in paths:
        lines = path.read_text().splitlines(keepends=True)
        assert lines[0] == shipped_header
        assert len(lines) == 501


def test_same_seed_same_bytes_other_seed_other_rows(tmp_path):
    first = synthetic.write_spans(tmp_path / "a", rows=2000, seed=7)[0].read_bytes()
    again = synthetic.write_spans(tmp_path / "b", rows=2000, seed=7)[0].read_bytes()
    other = synthetic.write_spans(tmp_path / "c", rows=2000, seed=8)[0].read_bytes()
    assert first == again
    assert first != other


def test_spans_of_one_run_differ(tmp_path):
    one, two = synthetic.write_spans(tmp_path, rows=1000, spans=2, seed=7)
    assert one.read_bytes() != two.read_bytes()


def test_cells_parse_as_the_shipped_types(generated, source):
    for column in source.header:
        shipped = source.text[column][source.text[column] != ""]
        cells = generated[column][generated[column] != ""]
        if pd.to_numeric(shipped, errors="coerce").notna().all():
            assert pd.to_numeric(cells, errors="coerce").notna().all(), column
            if shipped.str.fullmatch(r"-?\d+").all():  # integer columns stay integers
                assert cells.str.fullmatch(r"-?\d+").all(), column


def test_missing_rates_match_the_shipped_data(generated, source):
    for column in source.header:
        shipped = (source.text[column] == "").mean()
        ours = (generated[column] == "").mean()
        assert abs(ours - shipped) < 0.01, f"{column}: {ours:.4f} empty vs {shipped:.4f} shipped"


@pytest.mark.parametrize("column", ["payment_type", "company", "trip_start_hour", "trip_start_day",
                                    "pickup_community_area"])
def test_category_frequencies_match_the_shipped_data(generated, source, column):
    shipped = source.text[column].value_counts(normalize=True)
    ours = generated[column].value_counts(normalize=True).reindex(shipped.index, fill_value=0.0)
    # Total variation distance: at most 3% of the mass is in the wrong place.
    assert 0.5 * (ours - shipped).abs().sum() < 0.03, column


def test_calendar_columns_agree_with_the_timestamp(generated):
    when = pd.to_datetime(generated["trip_start_timestamp"].astype(np.int64), unit="s")
    assert (generated["trip_start_hour"].astype(int) == when.dt.hour).all()
    assert (generated["trip_start_month"].astype(int) == when.dt.month).all()
    assert (generated["trip_start_day"].astype(int) == (when.dt.dayofweek + 1) % 7 + 1).all()


def test_tips_keep_their_dependence_on_payment_type_and_fare(generated, source):
    # What the model learns: card trips often tip over 20% of the fare, cash trips record none.
    for frame in (source.text, generated):
        big = _numbers(frame, "tips") > 0.2 * _numbers(frame, "fare")
        by_payment = big.groupby(frame["payment_type"]).mean()
        assert by_payment["Credit Card"] > 0.5 and by_payment["Cash"] < 0.01
    assert abs(_big_tip_rate(generated) - _big_tip_rate(source.text)) < 0.02
    # Longer trips cost more, as in the shipped data.
    correlation = _numbers(generated, "fare").corr(_numbers(generated, "trip_miles"))
    assert correlation > 0.5 * _numbers(source.text, "fare").corr(_numbers(source.text, "trip_miles"))


def test_payment_mix_sets_the_shares_it_names(source):
    frame = synthetic.generate(ROWS, seed=2, source=source, payment_mix={"Cash": 0.2, "Credit Card": 0.75})
    shares = frame["payment_type"].value_counts(normalize=True)
    assert abs(shares["Cash"] - 0.2) < 0.01 and abs(shares["Credit Card"] - 0.75) < 0.01
    # The other types share the remaining 5% as they did.
    assert abs(shares.drop(["Cash", "Credit Card"]).sum() - 0.05) < 0.01
    # More card trips: more big tips.
    assert _big_tip_rate(frame) > _big_tip_rate(source.text) + 0.2


def test_payment_mix_can_add_an_unseen_type(source):
    frame = synthetic.generate(ROWS, seed=2, source=source, payment_mix={"Bitcoin": 0.1})
    assert abs((frame["payment_type"] == "Bitcoin").mean() - 0.1) < 0.01


def test_fare_scale_scales_fares_and_keeps_the_label_rate(source):
    plain = synthetic.generate(ROWS, seed=4, source=source)
    scaled = synthetic.generate(ROWS, seed=4, source=source, fare_scale=2.0)
    assert _numbers(scaled, "fare").mean() / _numbers(plain, "fare").mean() == pytest.approx(2.0, rel=0.01)
    assert _numbers(scaled, "tips").mean() / _numbers(plain, "tips").mean() == pytest.approx(2.0, rel=0.02)
    assert abs(_big_tip_rate(scaled) - _big_tip_rate(plain)) < 0.01
    # Only money changes: trip lengths are the same trips.
    assert scaled["trip_miles"].equals(plain["trip_miles"])


@pytest.mark.parametrize("text, message", [("Cash", "TYPE=SHARE"), ("Cash=1.5", "between 0 and 1"),
                                           ("Cash=0.7,Credit Card=0.6", "more than 1")])
def test_bad_payment_mix_says_what_to_write(text, message):
    with pytest.raises(ValueError, match=message):
        synthetic.parse_payment_mix(text)


def test_generate_command_writes_spans_and_reports_bad_options(tmp_path, capsys):
    assert cli(["generate", "--rows", "2e3", "--spans", "2", "--out", str(tmp_path), "--seed", "5"]) == 0
    assert "span-2/data.csv: 2,000 rows" in capsys.readouterr().out
    assert len(_read(tmp_path / "span-1" / "data.csv")) == 2000
    assert cli(["generate", "--rows", "10", "--out", str(tmp_path), "--payment-mix", "Cash=2"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err



def test_a_category_with_a_comma_is_quoted(tmp_path):
    path = synthetic.write_spans(tmp_path, rows=2000, seed=1, payment_mix={"Card, contactless": 0.5})[0]
    frame = _read(path)
    assert list(frame.columns) == synthetic.SourceData.load().header
    assert abs((frame["payment_type"] == "Card, contactless").mean() - 0.5) < 0.05


def test_trip_seconds_stay_within_the_schema_domain_however_long_the_template(source):
    seconds = pd.to_numeric(source.text["trip_seconds"], errors="coerce")
    longest_only = dataclasses.replace(source, text=source.text[seconds == seconds.max()].reset_index(drop=True))
    frame = synthetic.generate(ROWS, seed=3, source=longest_only)
    generated = pd.to_numeric(frame["trip_seconds"])
    assert generated.max() == synthetic.MAX_TRIP_SECONDS == 86400  # jitter would carry some past a day
    assert generated.min() < seconds.max()  # the factor still spreads them below the template
