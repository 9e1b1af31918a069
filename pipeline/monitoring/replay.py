"""Replay labelled trips through a model server as live traffic, and write their outcomes as the feed.

    taxi-pipeline replay data/new/span-1/data.csv --rest http://127.0.0.1:8501 --outcome-parts 2

Each row goes to the server without its tip (the clients send the SERVING features only),
with a request id; the tip comes back later as an outcome file keyed by that id. This is
how the feedback loop is exercised without real riders: `taxi-pipeline generate
--tip-change ...` makes trips whose tipping changed, this sends them, `monitor` judges.
Outcomes go to `--outcomes` (default: outcomes_root) or are held in `--hold` to be moved
into the feed later, in `--outcome-parts` files with later and later observation times.
"""
from __future__ import annotations

import csv
import pathlib
import random
import time
from typing import Mapping, Sequence

OUTCOME_HEADER = ("request_id", "observed_at", "tips", "fare")


def replay_rows(client, rows: Sequence[Mapping[str, str]], batch: int = 100, progress=None) -> list[str]:
    """Send `rows` in requests of `batch`; the request id of each row, in order."""
    ids: list[str] = []
    for start in range(0, len(rows), batch):
        ids += client.predict_with_ids(rows[start:start + batch]).request_ids
        if progress and (start // batch) % 20 == 19:
            print(f"replayed {len(ids)}/{len(rows)} rows", file=progress, flush=True)
    return ids


def write_outcome_files(folder: pathlib.Path, rows: Sequence[Mapping[str, str]], ids: Sequence[str],
                        parts: int = 1, share: float = 1.0, observed_at: float | None = None,
                        seed: int = 0, spacing_seconds: float = 60.0) -> list[pathlib.Path]:
    """Outcome CSVs for a random `share` of the rows (the rest never arrive), shuffled (late and
    in any order) into `parts` files; the last part is observed at `observed_at` (default now),
    each one before it `spacing_seconds` earlier."""
    if not 0 < share <= 1 or parts < 1:
        raise ValueError(f"outcome share must be in (0, 1] and parts at least 1, not {share} and {parts}")
    chosen = [i for i in range(len(rows)) if rows[i].get("tips", "") != ""]
    rng = random.Random(seed)
    rng.shuffle(chosen)
    chosen = chosen[:round(len(chosen) * share)]
    folder.mkdir(parents=True, exist_ok=True)
    last = int(time.time() if observed_at is None else observed_at)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(last))
    paths = []
    for part in range(parts):
        path = folder / f"outcomes-{stamp}-{part + 1:03d}.csv"
        staging = folder / f".{path.name}.part"  # hidden until whole: the reader skips dot files
        with open(staging, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(OUTCOME_HEADER)
            for i in chosen[part::parts]:
                when = last - (parts - 1 - part) * spacing_seconds
                writer.writerow((ids[i], f"{when:.0f}", rows[i]["tips"], rows[i]["fare"]))
        staging.rename(path)
        paths.append(path)
    return paths
