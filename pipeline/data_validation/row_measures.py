"""Row-level measures of a span that TFDV has no generator for, taken in the span statistics' own pass.

Whether trip_start_hour, trip_start_day and trip_start_month agree with
trip_start_timestamp, and how many rows repeat another row, depend on each row's values
together; the statistics TFDV keeps are per feature. TFDV runs custom generators on the
same Arrow batches as its own, so SpanStatisticsGen measures these while it reads the
span once. The results are custom_stats of the span's statistics (kept in ML Metadata
with them) that span_rules.py checks with TFDV's custom validations.

The data's convention, measured on the four shipped spans: the derived columns are the
timestamp's UTC hour, day of week (1 = Sunday .. 7 = Saturday) and month; all 15,002
rows agree under UTC, and no row's hour under America/Chicago (see data/README.md).
UTC needs no time-zone table, so the derived values are computed with integer and
numpy calendar arithmetic, which also takes absurd timestamps (year 47000) that pandas'
nanosecond datetimes cannot hold.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tensorflow_data_validation.statistics.generators import stats_generator
from tensorflow_metadata.proto.v0 import statistics_pb2

TIMESTAMP = "trip_start_timestamp"
DERIVED = ("trip_start_hour", "trip_start_day", "trip_start_month")
# Custom statistic names: on each derived column, and on the timestamp for repeated rows
# (a row repeated in full is the same trip, starting at the same moment, recorded twice).
AGREEMENT = "share of rows agreeing with trip_start_timestamp (UTC)"
DUPLICATES = "share of rows repeating an earlier row"
SECONDS_PER_HOUR, SECONDS_PER_DAY = 3600, 86400
THURSDAY = 5  # 1970-01-01, day 0 of Unix time, in the data's 1 = Sunday numbering


def derived_from_timestamp(seconds: np.ndarray) -> dict[str, np.ndarray]:
    """The UTC hour (0-23), day of week (1 = Sunday) and month (1-12) of Unix times in seconds."""
    seconds = seconds.astype(np.int64)
    days = np.floor_divide(seconds, SECONDS_PER_DAY)
    months = seconds.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    return {"trip_start_hour": np.floor_divide(seconds, SECONDS_PER_HOUR) % 24,
            "trip_start_day": (days + THURSDAY - 1) % 7 + 1,
            "trip_start_month": months % 12 + 1}


def _values(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """One value per row of a column (at most one value per feature per row): NaN or None where missing."""
    index = batch.schema.get_field_index(name)
    column = batch.column(index) if index >= 0 else pa.nulls(batch.num_rows)
    if pa.types.is_null(column.type):
        return np.full(batch.num_rows, np.nan)
    values = pc.list_flatten(column)
    parents = pc.list_parent_indices(column).to_numpy()
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        out = np.full(batch.num_rows, np.nan)
    else:
        out = np.full(batch.num_rows, None, dtype=object)
    out[parents] = values.to_numpy(zero_copy_only=False)
    return out


@dataclasses.dataclass
class _Counts:
    compared: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(DERIVED, 0))
    agreeing: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(DERIVED, 0))
    row_hashes: list[np.ndarray] = dataclasses.field(default_factory=list)


class RowMeasures(stats_generator.CombinerStatsGenerator):
    """Agreement of the derived time columns with the timestamp, and the share of repeated rows."""

    def __init__(self) -> None:
        super().__init__("RowMeasures")

    def create_accumulator(self) -> _Counts:
        return _Counts()

    def add_input(self, accumulator: _Counts, input_record_batch: pa.RecordBatch) -> _Counts:
        batch = input_record_batch
        timestamps = _values(batch, TIMESTAMP)
        known = ~np.isnan(timestamps)
        expected = derived_from_timestamp(np.where(known, timestamps, 0))
        for name in DERIVED:
            found = _values(batch, name)
            compared = known & ~np.isnan(found)
            accumulator.compared[name] += int(compared.sum())
            accumulator.agreeing[name] += int((compared & (found == expected[name])).sum())
        # A 64-bit hash per row over every column (sorted by name: batches may order them differently).
        frame = pd.DataFrame({name: _values(batch, name) for name in sorted(batch.schema.names)})
        accumulator.row_hashes.append(pd.util.hash_pandas_object(frame, index=False).to_numpy())
        return accumulator

    def merge_accumulators(self, accumulators) -> _Counts:
        merged = _Counts()
        for counts in accumulators:
            for name in DERIVED:
                merged.compared[name] += counts.compared[name]
                merged.agreeing[name] += counts.agreeing[name]
            merged.row_hashes.extend(counts.row_hashes)
        return merged

    def compact(self, accumulator: _Counts) -> _Counts:
        if len(accumulator.row_hashes) > 1:
            accumulator.row_hashes = [np.concatenate(accumulator.row_hashes)]
        return accumulator

    def extract_output(self, accumulator: _Counts) -> statistics_pb2.DatasetFeatureStatistics:
        result = statistics_pb2.DatasetFeatureStatistics()
        for name in DERIVED:
            if accumulator.compared[name]:
                feature = result.features.add()
                feature.path.step.append(name)
                feature.custom_stats.add(name=AGREEMENT, num=accumulator.agreeing[name] / accumulator.compared[name])
        hashes = np.concatenate(accumulator.row_hashes) if accumulator.row_hashes else np.array([], np.uint64)
        if len(hashes):
            feature = result.features.add()
            feature.path.step.append(TIMESTAMP)
            feature.custom_stats.add(name=DUPLICATES, num=1 - len(np.unique(hashes)) / len(hashes))
        return result


def custom_stat(statistics: statistics_pb2.DatasetFeatureStatistics, feature: str, name: str) -> float | None:
    """A custom statistic of a feature, None when the statistics do not hold it."""
    for candidate in statistics.features:
        if ".".join(candidate.path.step) == feature or candidate.name == feature:
            for stat in candidate.custom_stats:
                if stat.name == name:
                    return stat.num
    return None
