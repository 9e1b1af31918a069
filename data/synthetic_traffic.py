"""Synthetic model-server traffic: request logs and outcome feeds, without a model or a server.

For the live-quality monitor (pipeline/monitoring/) at any size: its tests and
benchmarks/monitor_benchmark.py. Trips come from `data.synthetic.generate` (text columns),
probabilities from `scored` (no model is run), and both are written the way production
writes them:

* `write_request_log`: TFRecord files of PredictionLog records, framed, built and carrying
  request ids exactly as the model server's RequestLog writes them (its own helpers are
  called), one record per predict request of `rows_per_request` rows to serving_default;
* `write_outcomes`: one CSV file of the outcome feed (pipeline/monitoring/OUTCOMES.md);
* `big_tip_labels`: the label the monitor's joiner gives a row, vectorised;
* `serialized_examples`: the tf.Examples a client sends for the rows
  (`serving.clients.request_encoding.row_to_example`), 10x faster than calling it per row.

    frame = synthetic.generate(10_000, seed=0)
    ids = [f"req-{i}" for i in range(len(frame))]
    write_request_log("log/requests.tfrecord", frame, scored(frame, seed=0, quality=0.9), ids,
                      timestamps=1795132800, version=3, version_label="stable")
    write_outcomes("outcomes/day-1.csv", ids, frame["tips"], frame["fare"], observed_at=1795136400)

10^6 rows take about 10 s to log and 2 s to write as outcomes on one core.
"""
from __future__ import annotations

import gzip
import math
import os
import statistics
import tempfile
from typing import Sequence

import numpy as np
import pandas as pd

from models import features as F
from serving.clients.request_encoding import row_to_example
from serving.request_ids import with_ids

# _predict_log is private to the server, but it is the one definition of what a logged predict
# request holds; calling it keeps this writer from drifting away from the server's.
from serving.server.request_log import _predict_log, tfrecord_bytes

MODEL_NAME = "taxi-tips"  # the model server's --model_name in serving/deploy
SIGNATURE = "serving_default"  # pipeline/artifacts.py SERVING_DEFAULT (not imported: that module loads TFX)
EXAMPLES_INPUT = "examples"  # serving_default's input: serialized tf.Examples
OUTPUT_KEY = "tip_probability"  # models/signatures.py OUTPUT_KEY (not imported: that module loads TFT)
# Records are written in chunks: one write per record costs a system call each.
_WRITE_CHUNK_BYTES = 4 * 1024 * 1024


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _example(body: bytes) -> bytes:
    # Example field 1 (features), length-delimited. An Example without cells serializes empty, as
    # row_to_example's does (it never touches `features` then).
    return b"\n" + _varint(len(body)) + body if body else b""


def serialized_examples(frame: pd.DataFrame, feature_types: dict[str, str] | None = None) -> np.ndarray:
    """Per row of `frame` (text cells, "" for empty), row_to_example(row, feature_types).SerializeToString()
    as an object array: the same Example (parse both and they are equal), built per distinct cell.

    row_to_example costs ~30 us a row (10^6 rows: 30 s). Here every distinct (feature, text) cell
    is encoded once by row_to_example itself, as a one-entry Features message; the serialized
    entries of a row are concatenated (repeated map entries parse as one map) and wrapped as an
    Example. Only the map's order on the wire may differ from row_to_example's bytes.
    """
    types = F.feature_types() if feature_types is None else feature_types
    columns = []
    for name, kind in types.items():
        if name not in frame.columns:
            continue  # row_to_example: a column the row does not have is left out
        codes, distinct = pd.factorize(frame[name].to_numpy(dtype=object), use_na_sentinel=False)
        if not all(isinstance(text, str) for text in distinct):
            raise ValueError(f"column {name}: every cell must be text (\"\" for empty), as data.synthetic makes them")
        pieces = np.array([row_to_example({name: text}, {name: kind}).features.SerializeToString()
                           for text in distinct], dtype=object)
        columns.append(pieces[codes])
    if not columns:
        return np.array([b""] * len(frame), dtype=object)
    out = np.empty(len(frame), dtype=object)
    out[:] = [_example(b"".join(parts)) for parts in zip(*columns)]
    return out


def _per_request(timestamps, rows: int, rows_per_request: int) -> np.ndarray:
    """One int timestamp per request from a scalar, one per request, or one per row (equal within a request)."""
    requests = -(-rows // rows_per_request)
    values = np.asarray(timestamps)
    if values.ndim == 0:
        return np.full(requests, int(values), dtype=np.int64)
    values = values.reshape(-1)
    if len(values) == requests:
        return values.astype(np.int64)
    if len(values) == rows:
        firsts = values[::rows_per_request]
        if not np.array_equal(np.repeat(firsts, rows_per_request)[:rows], values):
            raise ValueError("per-row timestamps must be equal within each request of rows_per_request rows "
                             "(a request has one time); or give one per request")
        return firsts.astype(np.int64)
    raise ValueError(f"{len(values)} timestamps for {rows} rows in {requests} requests: give one, one per request "
                     "or one per row")


def write_request_log(path: str, frame: pd.DataFrame, predictions, request_ids: Sequence[str], timestamps,
                      version: int, version_label: str | None = None, rows_per_request: int = 100, *,
                      model: str = MODEL_NAME, append: bool = False) -> int:
    """Log `frame`'s rows as served predict requests of `rows_per_request` rows each; returns the records written.

    Each record is what RequestLog.record writes for a serving_default call: the request (model spec as the
    client addressed it: `version_label`, or `version` when None) with the rows' tf.Examples as `examples`,
    the response (model spec of `version`) with `predictions` as `tip_probability` of shape [rows, 1]
    float32 (the Keras model's output), log_metadata with the served spec and `timestamps` (Unix seconds:
    one, one per request, or one per row), the rows' `request_ids` in field 1000, in TFRecord framing.
    Written directly, in order; `append` adds to an existing log as the server does.
    """
    if rows_per_request < 1:
        raise ValueError(f"rows_per_request must be at least 1, not {rows_per_request}")
    examples = serialized_examples(frame)
    rows = len(examples)
    probabilities = np.asarray(predictions, dtype=np.float32).reshape(-1, 1)
    if len(probabilities) != rows or len(request_ids) != rows:
        raise ValueError(f"{rows} rows, {len(probabilities)} predictions and {len(request_ids)} request ids: "
                         "give one of each per row")
    times = _per_request(timestamps, rows, rows_per_request)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    records = 0
    with open(path, "ab" if append else "wb") as out:
        chunk, size = [], 0
        for start in range(0, rows, rows_per_request):
            end = min(start + rows_per_request, rows)
            entry = _predict_log(model, version, SIGNATURE, {EXAMPLES_INPUT: examples[start:end]},
                                 {OUTPUT_KEY: probabilities[start:end]}, version_label, int(times[records]))
            record = tfrecord_bytes(with_ids(entry.SerializeToString(), list(request_ids[start:end])))
            chunk.append(record)
            size += len(record)
            records += 1
            if size >= _WRITE_CHUNK_BYTES:
                out.write(b"".join(chunk))
                chunk, size = [], 0
        out.write(b"".join(chunk))
    return records


def _cells(values, name: str) -> list[str]:
    """CSV cells of a column: text as given (None/NaN empty), numbers in their shortest form (NaN empty)."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return [str(value) for value in array.tolist()]
    if array.dtype.kind == "f":
        return ["" if math.isnan(value) else repr(value) for value in array.tolist()]
    if array.dtype.kind in "OUS":
        return ["" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
                for value in array.tolist()]
    raise ValueError(f"{name}: cannot write {array.dtype} values as CSV cells")


def write_outcomes(path: str, request_ids: Sequence[str], tips, fare, observed_at) -> int:
    """Write one outcome file of the feed (request_id,observed_at,tips,fare); returns the rows written.

    `tips`, `fare`: text (as data.synthetic makes them) or numbers, one per id; an empty fare cell (or NaN,
    or `fare=None` for the whole column) makes the joiner use the fare the request carried. `observed_at`:
    Unix seconds, one or one per id. A `.gz` path is gzipped. The file is written under a hidden name and
    renamed into place, as OUTCOMES.md asks of a feed, so a reader never sees half of it.
    """
    ids = _cells(request_ids, "request_id")
    rows = len(ids)
    seconds = np.asarray(observed_at, dtype=np.float64)
    seconds = np.broadcast_to(seconds, (rows,)) if seconds.ndim == 0 else seconds
    tips_cells = _cells(tips, "tips")
    fare_cells = [""] * rows if fare is None else _cells(fare, "fare")
    if not len(seconds) == len(tips_cells) == len(fare_cells) == rows:
        raise ValueError(f"{rows} request ids, {len(seconds)} observed_at, {len(tips_cells)} tips and "
                         f"{len(fare_cells)} fares: give one of each per id")
    if any(not cell for cell in ids) or any(not cell for cell in tips_cells):
        raise ValueError("every outcome needs a request id and a tip (the feed refuses empty ones)")
    if not np.all((seconds >= 0) & (seconds < 1e11)):
        raise ValueError("observed_at must be Unix seconds between 0 and 1e11")
    # Whole seconds print without ".0"; others in their shortest form.
    when = [str(int(value)) if value == int(value) else repr(value) for value in seconds.tolist()]
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=".", suffix=".part", dir=folder)
    try:
        with (gzip.open(os.fdopen(handle, "wb"), "wt", newline="") if path.endswith(".gz")
              else os.fdopen(handle, "w", newline="")) as out:
            out.write("request_id,observed_at,tips,fare\n")
            for start in range(0, rows, 100_000):  # bounded memory for the joined text
                end = start + 100_000
                out.write("".join(f"{a},{b},{c},{d}\n" for a, b, c, d in
                                  zip(ids[start:end], when[start:end], tips_cells[start:end], fare_cells[start:end])))
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.remove(staging)
        raise
    return rows


def _numbers(values) -> np.ndarray:
    """Text or numbers -> float64, NaN for empty cells."""
    array = np.asarray(values)
    if array.dtype.kind in "OUS":
        return pd.to_numeric(pd.Series(array, dtype=object).replace("", np.nan), errors="coerce").to_numpy(float)
    return array.astype(np.float64)


def big_tip_labels(tips, fare) -> np.ndarray:
    """The joiner's label per row (pipeline.monitoring.outcomes.label, vectorised): 1 when the tip is more than
    BIG_TIP_SHARE of the fare, in float32 as training computes it; -1 where the tip or the fare is unknown."""
    tip, fares = _numbers(tips).astype(np.float32), _numbers(fare).astype(np.float32)
    labels = (tip > fares * np.float32(F.BIG_TIP_SHARE)).astype(np.int8)
    labels[np.isnan(tip) | np.isnan(fares)] = -1
    return labels


def scored(frame: pd.DataFrame, seed: int, quality: float) -> np.ndarray:
    """Probabilities for `frame`'s trips whose AUC against the big-tip label is about `quality` (float32).

    A binormal score: the big-tip rows' scores are shifted by d = sqrt(2) * Phi^-1(quality) against
    the others', with unit normal noise, so AUC = Phi(d / sqrt(2)) = quality in expectation; a
    sigmoid makes them probabilities whose mean is near the big-tip rate. Rows without a label
    (no tip or fare) count as no big tip. Deterministic by `seed`.
    """
    if not 0.0 < quality < 1.0:
        raise ValueError(f"quality is an AUC strictly between 0 and 1, not {quality}")
    label = big_tip_labels(frame["tips"].to_numpy(), frame["fare"].to_numpy()) == 1
    shift = math.sqrt(2.0) * statistics.NormalDist().inv_cdf(quality)
    rate = min(max(float(label.mean()) if len(label) else 0.5, 0.01), 0.99)
    # Centred so that a row at the mean shift gets the big-tip rate as its probability.
    logit = math.log(rate / (1.0 - rate)) + shift * (label - rate) + np.random.default_rng(seed).standard_normal(
        len(label))
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
