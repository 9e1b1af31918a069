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


def _gfile(path: str):
    """The file API for `path`: Python's for a local path, TensorFlow's for a remote one (gs://
    and the like), imported only then: the command line and a rerun's up-to-date check list
    local spans and should not pay TensorFlow's start-up for that."""
    if "://" not in path:
        return _LocalFiles
    import tensorflow as tf

    return tf.io.gfile


class _LocalFiles:
    """The three calls of tf.io.gfile this module makes, for local paths."""
    listdir = staticmethod(os.listdir)
    isdir = staticmethod(os.path.isdir)

    @staticmethod
    def glob(pattern: str) -> list[str]:
        import glob
        return glob.glob(pattern)


def list_spans(data_root: str) -> list[int]:
    names = [name.rstrip("/") for name in _gfile(data_root).listdir(data_root)]
    spans = sorted(int(m.group(1)) for name in names
                   if (m := SPAN_FOLDER.match(name)) and _gfile(data_root).isdir(f"{data_root}/{name}"))
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


def spans_to_read(data_root: str, setting: str | int) -> list[int]:
    """The span numbers a run with this `spans` setting reads."""
    available = list_spans(data_root)
    if setting == "all":
        return available
    if setting == "latest":
        return available[-1:]
    window = parse_window(setting)
    if window:
        return available[-window:]
    if int(setting) not in available:
        raise ValueError(f"spans={setting}: {data_root} has no span-{setting}/ folder (it has {available})")
    return [int(setting)]


def span_files(data_root: str, span: int) -> list[str]:
    return sorted(_gfile(data_root).glob(f"{data_root.rstrip('/')}/span-{span}/*.csv"))
