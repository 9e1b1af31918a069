"""The window's labelled traffic as the next span of the data root, for the next run.

Each captured row is what the client sent (the logged tf.Example) with the tip its
outcome reported, in the header of the newest span, so the next run's CsvCheck, drift
checks and data gate judge it like any span (so clients should send every SERVING feature
of the schema, as serving/clients does, not only the model's inputs: a column no request
carried is left empty, and the schema's presence rules then stop the span). Rows whose outcome gave only the label
(big_tip) are not captured: a tip would have to be invented. The span is written to a
hidden folder and renamed into place, so no run ever sees half of it.
"""
from __future__ import annotations

import csv
import os
import pathlib
import tempfile

import numpy as np
import tensorflow as tf

from models import features as F
from pipeline.ingest.spans import list_spans
from pipeline.monitoring.logged_predictions import JoinedWindow, feature_value


def _header(data_root: str, span: int) -> list[str]:
    files = sorted(pathlib.Path(data_root, f"span-{span}").glob("*.csv"))
    if not files:
        raise ValueError(f"{data_root}/span-{span} has no CSV file to take the training header from")
    with open(files[0], newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle))


def _text(feature: tf.train.Feature) -> str:
    value = feature_value(feature)
    if value is None:
        return ""
    # float32 as logged, printed in its shortest form (16.65, not 16.649999618530273)
    return str(np.float32(value)) if isinstance(value, float) else str(value)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}.0"


def capture_span(window: JoinedWindow, data_root: str, since: float) -> tuple[pathlib.Path | None, int]:
    """Write the rows of `window` logged at or after `since` that have a tip as span-<newest + 1>/data.csv.

    Returns (the span folder or None when no row qualifies, rows written)."""
    keep = [i for i, (when, outcome) in enumerate(zip(window.rows["timestamp"], window.outcomes))
            if when >= since and outcome.tips is not None]
    if not keep:
        return None, 0
    spans = list_spans(data_root)
    header = _header(data_root, spans[-1])
    missing = {F.LABEL_KEY, "fare"} - set(header)
    if missing:
        raise ValueError(f"{data_root}/span-{spans[-1]}: the header lacks {sorted(missing)}; cannot write a span")
    target = pathlib.Path(data_root, f"span-{spans[-1] + 1}")
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=data_root))
    try:
        with open(staging / "data.csv", "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for i in keep:
                example = tf.train.Example.FromString(window.examples[i]).features.feature
                outcome = window.outcomes[i]
                cells = {name: _text(example[name]) if name in example else "" for name in header}
                cells[F.LABEL_KEY] = _number(outcome.tips)
                if outcome.fare is not None:
                    cells["fare"] = _number(outcome.fare)
                writer.writerow([cells[name] for name in header])
        os.chmod(staging, 0o755)
        os.rename(staging, target)  # fails if the folder appeared meanwhile: nothing is overwritten
    except BaseException:
        for leftover in staging.glob("*"):
            leftover.unlink()
        staging.rmdir()
        raise
    return target, len(keep)
