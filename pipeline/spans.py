"""Which span folders of data_root a run reads, and how ExampleGen is pointed at them.

data_root holds span-<N>/ folders. A run reads all of them, the latest one, one given
span, or a rolling window of the N latest. ExampleGen's own span support reads exactly
one span, so a window is presented to it as a folder of links to the window's span
folders, named after the spans it holds: a new span makes a new window folder, which
ExampleGen sees as new input, while an unchanged window stays cached.
"""
from __future__ import annotations

import os
import pathlib
import re

SPAN_FOLDER = re.compile(r"^span-(\d+)$")


def list_spans(data_root: str) -> list[int]:
    root = pathlib.Path(data_root)
    spans = sorted(int(m.group(1)) for p in root.iterdir() if p.is_dir() and (m := SPAN_FOLDER.match(p.name)))
    if not spans:
        raise ValueError(f"{data_root} has no span-<N>/ folders; put each span's CSV files in span-1/, span-2/, ...")
    return spans


def parse_window(spans: str | int) -> int | None:
    """N for "window:N", None for the other forms."""
    if isinstance(spans, str) and spans.startswith("window:"):
        count = spans.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"spans {spans!r}: the window size must be a whole number of at least 1")
        return int(count)
    return None


def window_folder(data_root: str, size: int, windows_root: str) -> tuple[str, list[int]]:
    """A folder whose span-<N> entries link to the `size` latest span folders of data_root."""
    if "://" in data_root or "://" in windows_root:
        raise ValueError("spans=window:N needs a local data_root and output_root (it links span folders); "
                         "use 'all' or 'latest' on remote storage")
    chosen = list_spans(data_root)[-size:]
    folder = pathlib.Path(windows_root) / ("spans-" + "-".join(str(span) for span in chosen))
    folder.mkdir(parents=True, exist_ok=True)
    for span in chosen:
        link = folder / f"span-{span}"
        target = pathlib.Path(data_root).resolve() / f"span-{span}"
        if not link.is_symlink():
            os.symlink(target, link, target_is_directory=True)
        elif pathlib.Path(os.readlink(link)) != target:
            raise ValueError(f"{link} points to {os.readlink(link)}, not {target}; remove {folder} and run again")
    return str(folder), chosen
