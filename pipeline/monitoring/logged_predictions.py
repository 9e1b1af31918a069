"""The predictions a model server logged in a time window, joined by request id to their outcomes.

One pass over the request log (serving/server/request_log.py: PredictionLog records whose
rows carry request ids). Only predict calls whose input is serialized tf.Examples
(serving_default) are joined: their examples hold the slice features and everything a
captured span needs. Memory follows the window's labelled rows, not the log: a row
without an outcome is only counted.
"""
from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline.monitoring.outcomes import Outcome, Outcomes, label
from serving.server.request_log import read_records

PREDICTION, LABEL = "prediction", "big_tip"
VERSION, VERSION_LABEL = "model_version", "version_label"
# A request addressed by version number (or latest) has no label; its rows get this one.
NO_LABEL = "-"
EXAMPLES_INPUT = "examples"


@dataclasses.dataclass
class JoinedWindow:
    start: float
    end: float
    # One labelled row per joined prediction: request_id, timestamp, model_version, version_label,
    # prediction, big_tip and the slice features.
    rows: pd.DataFrame
    # Per row of `rows`: the serialized tf.Example the client sent and the outcome it got.
    examples: list[bytes]
    outcomes: list[Outcome]
    # (version, label) -> rows logged in the window / joined with an outcome.
    logged: collections.Counter
    labelled: collections.Counter
    # Outcomes whose id no logged row of the window carries (late for an older window, or unknown).
    unmatched_outcomes: int
    # Why logged records of the window were not joined, e.g. {"no request ids": 3}.
    skipped: collections.Counter

    def coverage(self, version: int, version_label: str | None = None) -> float:
        keys = [key for key in self.logged if key[0] == version and version_label in (None, key[1])]
        logged = sum(self.logged[key] for key in keys)
        return sum(self.labelled[key] for key in keys) / logged if logged else 0.0


def feature_value(feature: tf.train.Feature):
    """A single-valued tf.Example feature's value (bytes decoded as UTF-8); None when it holds none."""
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else ()
    if not values:
        return None
    return values[0].decode("utf-8", "replace") if kind == "bytes_list" else values[0]


def prediction_column(outputs, output_key: str | None) -> np.ndarray:
    names = sorted(outputs)
    key = output_key or (names[0] if len(names) == 1 else None)
    if key not in outputs:
        raise KeyError(f"outputs {', '.join(names)}; say which is the probability with output_key")
    return tf.make_ndarray(outputs[key]).reshape(-1)


def join_window(log_pattern: str, outcomes: Outcomes, start: float, end: float,
                slice_features: tuple[str, ...], output_key: str | None = None,
                examples_path: str | None = None) -> JoinedWindow:
    """The predict rows logged in [start, end), joined by request id to `outcomes`. With
    `examples_path`, every row's tf.Example (labelled or not) is also written there as TFRecords,
    for statistics of the window's traffic."""
    writer = tf.io.TFRecordWriter(examples_path) if examples_path else None
    try:
        return _join(log_pattern, outcomes, start, end, slice_features, output_key, writer)
    finally:
        if writer is not None:
            writer.close()


def _join(log_pattern: str, outcomes: Outcomes, start: float, end: float, slice_features: tuple[str, ...],
          output_key: str | None, writer) -> JoinedWindow:
    columns: dict[str, list] = collections.defaultdict(list)
    examples: list[bytes] = []
    joined: list[Outcome] = []
    logged: collections.Counter = collections.Counter()
    labelled: collections.Counter = collections.Counter()
    skipped: collections.Counter = collections.Counter()
    matched_ids: set[str] = set()
    by_id = outcomes.by_id
    wanted = tuple(dict.fromkeys(slice_features + ("fare",)))
    for entry, ids in read_records(log_pattern):
        when = entry.log_metadata.timestamp_secs
        if not start <= when < end:
            if not when:
                skipped["no timestamp (logged before request ids)"] += 1
            continue
        if entry.WhichOneof("log_type") != "predict_log":
            skipped["not a predict call"] += 1
            continue
        request, response = entry.predict_log.request, entry.predict_log.response
        if EXAMPLES_INPUT not in request.inputs:
            skipped["predict input is not tf.Examples"] += 1
            continue
        serialized = tf.make_ndarray(request.inputs[EXAMPLES_INPUT]).reshape(-1)
        if len(ids) != len(serialized):
            skipped["no request ids"] += 1
            continue
        try:
            predictions = prediction_column(response.outputs, output_key)
        except KeyError:
            skipped["no single probability output"] += 1
            continue
        version = response.model_spec.version.value or entry.log_metadata.model_spec.version.value
        version_label = request.model_spec.version_label or NO_LABEL
        logged[(version, version_label)] += len(ids)
        if writer is not None:
            for example in serialized:
                writer.write(example)
        for row, request_id in enumerate(ids):
            outcome = by_id.get(request_id)
            if outcome is None or request_id in matched_ids:
                continue
            example = tf.train.Example.FromString(serialized[row]).features.feature
            values = {name: feature_value(example[name]) if name in example else None for name in wanted}
            big_tip = label(outcome, values["fare"])
            if big_tip is None:
                skipped["outcome without a fare to judge the tip by"] += 1
                continue
            matched_ids.add(request_id)
            labelled[(version, version_label)] += 1
            columns["request_id"].append(request_id)
            columns["timestamp"].append(when)
            columns[VERSION].append(version)
            columns[VERSION_LABEL].append(version_label)
            columns[PREDICTION].append(float(predictions[row]))
            columns[LABEL].append(big_tip)
            for name in slice_features:
                columns[name].append(values[name])
            examples.append(bytes(serialized[row]))
            joined.append(outcome)
    frame = pd.DataFrame({name: columns[name] for name in
                          ("request_id", "timestamp", VERSION, VERSION_LABEL, PREDICTION, LABEL) + slice_features})
    frame[PREDICTION] = frame[PREDICTION].astype(np.float32)
    unmatched = sum(1 for request_id in by_id if request_id not in matched_ids)
    return JoinedWindow(start, end, frame, examples, joined, logged, labelled, unmatched, skipped)
