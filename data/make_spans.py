"""Rebuild data/taxi/span-N/ from the Chicago taxi sample that ships inside the tfx package.

The spans are committed; this script documents how they were made and lets anyone check
them. Rows are assigned to spans by trip_start_timestamp and keep their original order and
text (no re-formatting), so ExampleGen sees exactly the bytes TFX's own example reads.

    python data/make_spans.py            # rewrite data/taxi/
"""
import argparse
import calendar
import csv
import datetime
import os
import pathlib

import tfx

SOURCE = pathlib.Path(tfx.__file__).parent / "examples/chicago_taxi_pipeline/data/simple/data.csv"

# Span N holds trips that started in [start, end) (UTC). Boundaries sit on quarter starts
# and give four spans of similar size (3.1k-4.3k rows) in time order.
SPAN_STARTS = ["2013-01-01", "2013-10-01", "2014-07-01", "2015-04-01", "2017-01-01"]


def _epoch(day: str) -> int:
    return calendar.timegm(datetime.date.fromisoformat(day).timetuple())


def span_of(timestamp: int) -> int:
    bounds = [_epoch(d) for d in SPAN_STARTS]
    for number, (start, end) in enumerate(zip(bounds, bounds[1:]), start=1):
        if start <= timestamp < end:
            return number
    raise ValueError(f"trip_start_timestamp {timestamp} is outside every span")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=pathlib.Path(__file__).parent / "taxi", type=pathlib.Path)
    args = parser.parse_args()
    lines = SOURCE.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    column = next(csv.reader([header])).index("trip_start_timestamp")
    by_span: dict[int, list[str]] = {}
    for line in rows:
        by_span.setdefault(span_of(int(next(csv.reader([line]))[column])), []).append(line)
    for number, span_rows in sorted(by_span.items()):
        folder = args.out / f"span-{number}"
        os.makedirs(folder, exist_ok=True)
        (folder / "data.csv").write_text(header + "".join(span_rows))
        print(f"{folder}/data.csv: {len(span_rows)} rows")


if __name__ == "__main__":
    main()
