"""Synthetic taxi spans of any size, fitted at run time to the shipped spans in data/taxi.

The shipped sample has 15,002 rows; the scaling benchmark and load tests need 10^4 to
10^6 and more. The generator is a stratified, smoothed bootstrap of the shipped rows:

* payment type is drawn from its shipped frequencies (or the mix given with
  `payment_mix`), and each synthetic trip then copies a "template" trip of that payment
  type: pickup and dropoff places (community area, census tract, latitude, longitude),
  company, and which cells are empty. Copying whole templates keeps the joint structure
  the model learns from (cash trips record no tip, card trips often tip 20%+, the
  location columns agree with each other, missing cells co-occur as they do).
* fare, trip_miles and trip_seconds of the template are multiplied by one random factor
  per trip (log-normal, ~8%), so every synthetic trip is new while fare per mile and per
  minute stay as they were; tips keep the template's tip share of the fare, so the
  big-tip label follows the fare it is computed from.
* the start time is a shipped start time moved by a whole number of weeks, which keeps
  the hour-of-day and day-of-week profile; month, hour and day are derived from it the
  way the shipped data derives them (UTC, day 1 = Sunday).

`fare_scale` multiplies fares and tips (a fare rise: the tip share, hence the label rate,
is unchanged) to make a span that drifts numerically. `tip_change` changes how one group
of riders tips (a TipChange: riders paying one way, at some hours, tip big on long trips
only), the concept drift the live-quality monitor has to notice: features look as before,
the label's relation to them does not. Everything is vectorised numpy, so
10^6 rows take seconds, and a seed fixes every byte of the output.

    taxi-pipeline generate --rows 1000000 --out out/synthetic [--spans 3] [--seed 7]
"""
from __future__ import annotations

import dataclasses
import pathlib
import time

import numpy as np
import pandas as pd

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE_ROOT = REPO_ROOT / "data" / "taxi"

# Columns copied from the template trip as text (empty cells stay empty).
TEMPLATE_COLUMNS = ("pickup_community_area", "pickup_latitude", "pickup_longitude", "pickup_census_tract",
                    "dropoff_community_area", "dropoff_latitude", "dropoff_longitude", "dropoff_census_tract",
                    "company")
# Trip length columns scaled together by one factor per trip.
LENGTH_COLUMNS = ("fare", "trip_miles", "trip_seconds")
# Spread of the per-trip length factor (log scale): new values, same shape of distribution.
LENGTH_JITTER = 0.08
# A trip lasts at most a day (the curated schema's domain for trip_seconds): the longest
# shipped trip (72,120 s) times a jitter factor above 1.2 passes it about once in 10^6 rows.
MAX_TRIP_SECONDS = 24 * 3600
# Start times move by up to this many whole weeks, keeping weekday and hour.
MAX_WEEKS_SHIFT = 8
WEEK_SECONDS = 7 * 24 * 3600


@dataclasses.dataclass
class SourceData:
    """The shipped rows as text, plus what the generator needs from them."""
    header: list[str]
    text: pd.DataFrame  # every column as str, empty string for an empty cell
    payment_freq: pd.Series  # payment type -> share of rows, most frequent first

    @classmethod
    def load(cls, root: pathlib.Path = SOURCE_ROOT) -> "SourceData":
        files = sorted(root.glob("span-*/*.csv"))
        if not files:
            raise ValueError(f"{root}: no span-<N>/*.csv files to fit the generator to")
        frames = [pd.read_csv(path, dtype=str, keep_default_na=False) for path in files]
        header = list(frames[0].columns)
        for path, frame in zip(files, frames):
            if list(frame.columns) != header:
                raise ValueError(f"{path}: header differs from {files[0]}; every span must have the same columns")
        text = pd.concat(frames, ignore_index=True)
        return cls(header, text, text["payment_type"].value_counts(normalize=True))


def parse_payment_mix(text: str) -> dict[str, float]:
    """'Cash=0.2,Credit Card=0.7' -> {'Cash': 0.2, 'Credit Card': 0.7}."""
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, share = item.rpartition("=")
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or not 0.0 <= value <= 1.0:
            raise ValueError(f"--payment-mix {item!r}: expected TYPE=SHARE with a share between 0 and 1, "
                             "e.g. 'Cash=0.2,Credit Card=0.75'")
        mix[name.strip()] = value
    if sum(mix.values()) > 1.0 + 1e-9:
        raise ValueError(f"--payment-mix {text!r}: the shares add up to {sum(mix.values()):.3f}, more than 1")
    return mix


def payment_probabilities(source_freq: pd.Series, mix: dict[str, float] | None) -> pd.Series:
    """Shares per payment type: the ones in `mix` as given, the others share the rest pro rata.

    A type that is not in the shipped data (e.g. 'Bitcoin') is allowed: it makes a span
    the data gate must stop.
    """
    if not mix:
        return source_freq
    rest = source_freq.drop(labels=[name for name in mix if name in source_freq.index])
    remainder = max(0.0, 1.0 - sum(mix.values()))
    if rest.sum() > 0:
        rest = rest / rest.sum() * remainder
    probabilities = pd.concat([pd.Series(mix, dtype=float), rest])
    if probabilities.sum() <= 0:
        raise ValueError("--payment-mix leaves every payment type at share 0")
    return probabilities / probabilities.sum()


@dataclasses.dataclass(frozen=True)
class TipChange:
    """Riders of `payment_type` starting at one of `hours` tip LONG_TRIP_SHARE of the fare on trips
    with a fare of at least `long_fare`, and SHORT_TRIP_SHARE on shorter ones: big tips (over 20%)
    on long trips only. The shipped card riders do the opposite (short trips tip big more
    often), so a model of them ranks these trips backwards; the change is learnable from fare,
    payment type and hour."""
    payment_type: str = "Credit Card"
    hours: frozenset[int] = frozenset(range(24))
    long_fare: float = 10.0

    LONG_TRIP_SHARE = 0.25
    SHORT_TRIP_SHARE = 0.05


def parse_tip_change(text: str) -> TipChange | None:
    """'Credit Card' or 'Credit Card@17-23' or 'Credit Card@7,8,17-19' -> TipChange; '' -> None."""
    if not text.strip():
        return None
    payment, _, hours_text = text.partition("@")
    hours: set[int] = set()
    try:
        for part in filter(None, (item.strip() for item in hours_text.split(","))):
            first, _, last = part.partition("-")
            hours.update(range(int(first), int(last or first) + 1))
    except ValueError:
        hours = {-1}
    if not payment.strip() or not all(0 <= hour <= 23 for hour in hours):
        raise ValueError(f"--tip-change {text!r}: expected PAYMENT_TYPE[@HOURS], hours 0-23 as a list or ranges, "
                         "e.g. 'Credit Card@17-23'")
    return TipChange(payment.strip(), frozenset(hours) if hours else frozenset(range(24)))


def _changed_tips(tips: np.ndarray, fare: np.ndarray, payment: np.ndarray, hour: np.ndarray,
                  change: TipChange) -> np.ndarray:
    affected = (payment == change.payment_type) & np.isin(hour, list(change.hours)) & ~np.isnan(fare)
    share = np.where(fare >= change.long_fare, change.LONG_TRIP_SHARE, change.SHORT_TRIP_SHARE)
    return np.where(affected, np.round(share * fare, 2), tips)


def _as_text(values: np.ndarray) -> np.ndarray:
    """Numbers as text, formatting each distinct value once (10x faster than per cell)."""
    distinct, index = np.unique(values, return_inverse=True)
    return distinct.astype(str).astype(object)[index.reshape(-1)]


def _format_decimal(values: np.ndarray, missing: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded numbers as short text ('16.65', '0.0'); empty where the template was empty."""
    out = _as_text(np.round(np.nan_to_num(values), decimals))
    out[missing] = ""
    return out


def generate(rows: int, seed: int | np.random.SeedSequence = 0, source: SourceData | None = None,
             payment_mix: dict[str, float] | None = None, fare_scale: float = 1.0,
             tip_change: TipChange | None = None) -> pd.DataFrame:
    """`rows` synthetic trips as text columns in the shipped header order."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    if fare_scale <= 0:
        raise ValueError(f"fare_scale must be positive, not {fare_scale}")
    source = source or SourceData.load()
    text = source.text
    rng = np.random.default_rng(seed)
    probabilities = payment_probabilities(source.payment_freq, payment_mix)

    # Payment type first, then a template trip of that type (any trip for an unseen type).
    payment = rng.choice(np.asarray(probabilities.index, dtype=object), size=rows, p=probabilities.to_numpy())
    template = np.empty(rows, dtype=np.int64)
    for name in probabilities.index:
        chosen = np.flatnonzero(payment == name)
        pool = np.flatnonzero(text["payment_type"].to_numpy() == name)
        if len(pool) == 0:
            pool = np.arange(len(text))
        template[chosen] = pool[rng.integers(0, len(pool), size=len(chosen))]

    out: dict[str, np.ndarray] = {"payment_type": payment}
    for column in TEMPLATE_COLUMNS:
        out[column] = text[column].to_numpy()[template]

    # Trip length: one factor per trip for fare, miles and seconds.
    factor = np.exp(rng.normal(0.0, LENGTH_JITTER, size=rows))
    numbers = {column: pd.to_numeric(text[column], errors="coerce").to_numpy()[template] for column in
               LENGTH_COLUMNS + ("tips",)}
    fare = numbers["fare"] * factor
    fare_missing = np.isnan(fare)
    # Tip share of the template's fare; a zero fare keeps the template's tip as it was.
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(numbers["fare"] > 0, numbers["tips"] / numbers["fare"], np.nan)
    tips = np.where(np.isnan(share), numbers["tips"], share * np.round(fare * 20) / 20)
    # Meter fares move in 5-cent steps; miles are recorded to 0.1, seconds in whole minutes.
    out["fare"] = _format_decimal(np.round(fare * fare_scale * 20) / 20, fare_missing, 2)
    miles = numbers["trip_miles"] * factor
    out["trip_miles"] = _format_decimal(miles, np.isnan(miles), 1)
    seconds = np.minimum(numbers["trip_seconds"] * factor, MAX_TRIP_SECONDS)  # NaN (missing) stays NaN
    seconds_missing = np.isnan(seconds)
    out["trip_seconds"] = _as_text((np.round(np.nan_to_num(seconds) / 60) * 60).astype(np.int64))
    out["trip_seconds"][seconds_missing] = ""

    # Start time: a shipped start time shifted by whole weeks; calendar columns follow it.
    starts = text["trip_start_timestamp"].astype(np.int64).to_numpy()[rng.integers(0, len(text), size=rows)]
    starts = starts + rng.integers(-MAX_WEEKS_SHIFT, MAX_WEEKS_SHIFT + 1, size=rows) * WEEK_SECONDS
    when = pd.to_datetime(starts, unit="s")
    out["trip_start_timestamp"] = _as_text(starts)
    out["trip_start_month"] = _as_text(when.month.to_numpy())
    out["trip_start_hour"] = _as_text(when.hour.to_numpy())
    out["trip_start_day"] = _as_text((when.dayofweek.to_numpy() + 1) % 7 + 1)  # 1 = Sunday
    # Last, so that the random draws (hence every other column) are those of the same seed without it.
    if tip_change is not None:
        tips = _changed_tips(tips, np.round(fare * 20) / 20, payment, when.hour.to_numpy(), tip_change)
    out["tips"] = _format_decimal(tips * fare_scale, np.isnan(tips), 2)

    missing = set(source.header) - set(out)
    if missing:
        raise ValueError(f"the shipped data has columns the generator does not make: {sorted(missing)}")
    return pd.DataFrame({column: out[column] for column in source.header})


def _needs_quoting(values) -> bool:
    return any(mark in str(value) for value in values for mark in ',"\n')


def _write_csv(frame: pd.DataFrame, path: pathlib.Path, plain: bool) -> None:
    """Comma-joined lines like the shipped files, 5x faster than pandas' to_csv at 10^6 rows.

    `plain` says no cell needs CSV quoting (every text cell is copied from the source or
    the payment mix, both checked); otherwise pandas writes it with quoting.
    """
    if not plain:
        frame.to_csv(path, index=False, lineterminator="\n")
        return
    columns = [frame[column].to_numpy() for column in frame.columns]
    with open(path, "w", newline="") as out:
        out.write(",".join(frame.columns) + "\n")
        for start in range(0, len(frame), 100_000):  # bounded memory for the joined text
            rows = zip(*(column[start:start + 100_000] for column in columns))
            out.write("\n".join(map(",".join, rows)) + "\n")


def write_spans(out_root: pathlib.Path, rows: int, spans: int = 1, first_span: int = 1, seed: int = 0,
                payment_mix: dict[str, float] | None = None, fare_scale: float = 1.0,
                source_root: pathlib.Path = SOURCE_ROOT, progress=None,
                tip_change: TipChange | None = None) -> list[pathlib.Path]:
    """Write span-<first_span>/data.csv ... each with `rows` rows; span k gets its own seed."""
    source = SourceData.load(source_root)
    plain = not _needs_quoting(pd.unique(source.text.to_numpy().ravel())) and not _needs_quoting(payment_mix or {})
    paths = []
    for number in range(first_span, first_span + spans):
        started = time.monotonic()
        # (seed, span) as the seed: spans differ from each other, and re-running is exact.
        span_seed = np.random.SeedSequence([seed, number])
        frame = generate(rows, span_seed, source, payment_mix, fare_scale, tip_change)
        folder = out_root / f"span-{number}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "data.csv"
        _write_csv(frame, path, plain)
        paths.append(path)
        if progress:
            print(f"{path}: {rows:,} rows in {time.monotonic() - started:.1f} s", file=progress, flush=True)
    return paths
