"""A sampled log of served requests, as TFRecord files of PredictionLog records.

The same record type TF Serving's own request logging writes, so tooling (and this
project's training/serving skew check) reads either. Predict requests to serving_default
carry serialized tf.Examples, those to serving_raw one tensor per raw feature; classify and
regress requests carry their tf.Examples in an Input, and are logged with their results.
Each record's log_metadata has the model spec served (the version resolved) and the time it
was served; its request has the model spec as the client addressed it (a version label, when
it came by one). The request ids of the served rows follow in field 1000 (see
serving/request_ids.py); `read_records` gives them with each record.

Routed and shadowed requests (serving/server/routing.py, shadow.py): the same extra message
holds the arm the router chose, the record's role ("serving", or "shadow" for a shadow
version's answer to the same request, with the same request ids), the server-side seconds
of the call and its time; a routed request's logged model spec has the arm as its
version_label. `read_calls` gives all of it; `read_records`, `read_logs` and what reads
through them (the skew check, live quality) see only the answers callers got.

Logging never fails or slows a request: `record` puts the request on a bounded queue and a
writer thread writes it. A full queue drops the record, a failed write (a full disk) loses
it; both are counted (`model_server_request_log_errors_total{reason}`) and logged at most
once a minute, and the writer carries on with the next record.

Files: records go to the log's path (`--request_log_file`), appended to what an earlier run
left there. When it would grow past `max_bytes` (or has been written for `max_age_seconds`)
it is renamed `<stem>.<UTC time>Z-<seq><ext>` (requests.tfrecord becomes
requests.20250101T120000Z-000000.tfrecord) and a new one started; `max_files` counts the
files kept, the oldest rotated ones are deleted. A file whose end is not a whole record (a
write cut short) is never appended to: it is rotated as it is, and readers skip that record.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import random
import re
import struct
import threading
import time
from typing import Callable, Iterator, NamedTuple

# The C CRC32C of google-cloud-storage (in the lock through apache-beam[gcp]): TFRecord framing
# needs it, and TensorFlow's own writer cannot append to a file.
import google_crc32c
import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, prediction_log_pb2, regression_pb2

from serving.request_ids import SERVING, SHADOW, extras_of, with_extras
from serving.server import classify_regress

log = logging.getLogger("serving.request_log")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FILES = 10
DEFAULT_QUEUE_SIZE = 1000
CLOSE_SECONDS = 10.0
ERROR_LOG_SECONDS = 60.0
# Why a sampled request is not in the log: the `reason` label of the error counter.
DROPPED, WRITE_ERROR, ENCODE_ERROR = "dropped", "write_error", "encode_error"
REASONS = (DROPPED, WRITE_ERROR, ENCODE_ERROR)
_STOP = object()
_HEADER_BYTES = 12  # uint64 length, masked CRC32C of the length


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord_bytes(data: bytes) -> bytes:
    """One record in TFRecord framing, as tf.io.TFRecordWriter writes it."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, _masked_crc(length), data, _masked_crc(data)))


def _write_all(fd: int, data: bytes) -> None:
    """The one low-level write: a disk that fills up can take part of a record and then refuse."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def whole_records_bytes(path: str) -> tuple[int, int]:
    """(bytes of `path` that are whole records, file size); reads the record headers only."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        end = 0
        while end + _HEADER_BYTES <= size:
            file.seek(end)
            header = file.read(_HEADER_BYTES)
            if len(header) < _HEADER_BYTES or _masked_crc(header[:8]) != header[8:]:
                break
            record_end = end + _HEADER_BYTES + struct.unpack("<Q", header[:8])[0] + 4
            if record_end > size:
                break
            end = record_end
    return end, size


def _rotated_name(name: str) -> re.Pattern:
    """What the rotated files of a log file called `name` are called."""
    stem, ext = os.path.splitext(name)
    return re.compile(re.escape(stem) + r"\.\d{8}T\d{6}Z-\d{6,}" + re.escape(ext) + r"\Z")


class RotatingRecordFile:
    """The log's file and its rotated parts. Only the writer thread uses it once the log runs."""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES, max_age_seconds: float = 0,
                 max_files: int = DEFAULT_MAX_FILES):
        self.path, self.max_bytes, self.max_age_seconds, self.max_files = path, max_bytes, max_age_seconds, max_files
        self.folder = os.path.dirname(path) or "."
        self._stem, self._ext = os.path.splitext(os.path.basename(path))
        self._rotated = _rotated_name(os.path.basename(path))
        self._fd: int | None = None
        self._size = 0
        self._identity: tuple[int, int] | None = None
        self._opened = 0.0

    def open(self) -> None:
        os.makedirs(self.folder, exist_ok=True)
        if os.path.isfile(self.path):
            whole, size = whole_records_bytes(self.path)
            if whole < size:  # appending after a cut-short record would hide every later record from readers
                log.warning("request log %s ends with %d bytes that are not a whole record (a write cut short); "
                            "kept as a rotated file, new records go to a new %s", self.path, size - whole, self.path)
                self._rotate()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        status = os.fstat(fd)
        self._fd, self._size, self._identity = fd, status.st_size, (status.st_dev, status.st_ino)
        self._opened = time.monotonic()
        self._prune()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def write(self, record: bytes) -> None:
        """Append one framed record; an OSError leaves the file whole records (or rotated at the next write)."""
        if self._fd is not None and not self._still_at_path():
            self._close_quietly()
        if self._fd is None:
            self.open()
        too_big = self._size + len(record) > self.max_bytes
        too_old = self.max_age_seconds and time.monotonic() - self._opened >= self.max_age_seconds
        if self._size and (too_big or too_old):
            self.close()
            self._rotate()
            self.open()
        try:
            _write_all(self._fd, record)
        except OSError:
            try:
                os.ftruncate(self._fd, self._size)  # take back our own partial record
            except OSError:
                self._close_quietly()  # reopening finds the cut-short record and rotates it aside
            raise
        self._size += len(record)

    def _still_at_path(self) -> bool:
        """False when the file was removed or renamed, or its folder replaced: then write to a new one."""
        try:
            status = os.stat(self.path)
        except OSError:
            return False
        return (status.st_dev, status.st_ino) == self._identity

    def _close_quietly(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def _rotate(self) -> None:
        stamp = f"{self._stem}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}Z-"
        # After the newest of this second: a free number below it (one pruned) would sort as older.
        taken = [int(os.path.basename(path)[len(stamp):-len(self._ext) or None])
                 for path in self.rotated_files() if os.path.basename(path).startswith(stamp)]
        os.rename(self.path, os.path.join(self.folder, f"{stamp}{max(taken, default=-1) + 1:06d}{self._ext}"))

    def rotated_files(self) -> list[str]:
        """Oldest first: the names sort by the time they were rotated."""
        return sorted(os.path.join(self.folder, name) for name in os.listdir(self.folder)
                      if self._rotated.match(name))

    def _prune(self) -> None:
        if not self.max_files:
            return
        rotated = self.rotated_files()
        for path in rotated[:max(0, len(rotated) - (self.max_files - 1))]:
            try:
                os.remove(path)
            except OSError as error:  # the disk bound is missed, but no record is lost for it
                log.warning("request log: cannot remove the old file %s: %s", path, error)


def _spec(model: str, version: int, signature: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=model, signature_name=signature)
    spec.version.value = version
    return spec


def _addressed_spec(model: str, version: int, signature: str, version_label: str | None) -> model_pb2.ModelSpec:
    """The request's model spec as the client sent it: by label, or by version (latest: the one resolved)."""
    if not version_label:
        return _spec(model, version, signature)
    return model_pb2.ModelSpec(name=model, signature_name=signature, version_label=version_label)


def _with_metadata(entry: prediction_log_pb2.PredictionLog, model: str, version: int, signature: str,
                   timestamp_secs: int) -> prediction_log_pb2.PredictionLog:
    entry.log_metadata.model_spec.CopyFrom(_spec(model, version, signature))
    entry.log_metadata.timestamp_secs = timestamp_secs
    return entry


def _predict_log(model: str, version: int, signature: str, inputs: dict[str, np.ndarray],
                 outputs: dict[str, np.ndarray], version_label: str | None = None,
                 timestamp_secs: int = 0) -> prediction_log_pb2.PredictionLog:
    request = predict_pb2.PredictRequest(model_spec=_addressed_spec(model, version, signature, version_label))
    response = predict_pb2.PredictResponse(model_spec=_spec(model, version, signature))
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
    return _with_metadata(prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request, response=response)),
        model, version, signature, timestamp_secs)


def _classify_or_regress_log(method: str, model: str, version: int, signature: str, request_input, result,
                             version_label: str | None = None,
                             timestamp_secs: int = 0) -> prediction_log_pb2.PredictionLog:
    addressed, spec = _addressed_spec(model, version, signature, version_label), _spec(model, version, signature)
    if method == classify_regress.CLASSIFY:
        entry = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
            request=classification_pb2.ClassificationRequest(model_spec=addressed, input=request_input),
            response=classification_pb2.ClassificationResponse(model_spec=spec, result=result)))
    else:
        entry = prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(
            request=regression_pb2.RegressionRequest(model_spec=addressed, input=request_input),
            response=regression_pb2.RegressionResponse(model_spec=spec, result=result)))
    return _with_metadata(entry, model, version, signature, timestamp_secs)


class RequestLog:
    """Logs a sampled share of requests (with their responses) from a writer thread; see the module doc.

    `metrics` (a ServerMetrics) gets the error counts; `errors` has them too, by reason.
    """

    def __init__(self, path: str, sample_rate: float = 1.0, seed: int | None = None, *, metrics=None,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_age_seconds: float = 0, max_files: int = DEFAULT_MAX_FILES,
                 queue_size: int = DEFAULT_QUEUE_SIZE, error_log_seconds: float = ERROR_LOG_SECONDS):
        if not 0 < sample_rate <= 1:
            raise ValueError(f"request log sample rate must be in (0, 1], not {sample_rate}")
        if max_bytes <= 0 or max_files < 0 or queue_size <= 0 or max_age_seconds < 0:
            raise ValueError("request log: max bytes and queue size must be positive, max files and max age "
                             f"0 (no limit) or more; not {max_bytes}, {queue_size}, {max_files}, {max_age_seconds}")
        if "://" in path:
            raise ValueError(f"request log {path}: give a local path (the writer appends, which object stores "
                             "cannot); readers take any file system TensorFlow reads")
        self.path, self.sample_rate, self.error_log_seconds = path, sample_rate, error_log_seconds
        self.errors: collections.Counter = collections.Counter()
        self._counter = metrics.request_log_errors if metrics is not None else None
        if self._counter is not None:
            for reason in REASONS:  # every series at 0 from the start, for rate() and alerts
                self._counter.labels(reason)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._warned: dict[str, float] = {}
        self._unreported: collections.Counter = collections.Counter()
        self._closed = False
        self._file = RotatingRecordFile(path, max_bytes, max_age_seconds, max_files)
        self._file.open()  # a path that cannot be written stops the server at start, with the error
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._write_forever, name="request-log-writer", daemon=True)
        self._thread.start()

    def record(self, model: str, version: int, signature: str, inputs: dict[str, np.ndarray],
               outputs: dict[str, np.ndarray], *, request_ids: list[str] | None = None,
               version_label: str | None = None, arm: str = "", role: str = SERVING,
               latency_seconds: float | None = None, sampled: bool | None = None,
               timestamp: float | None = None) -> bool:
        """Queue one served predict request (if sampled); True when queued. Never raises.

        `version` is the version that served it, `version_label` the label the client addressed
        (None when it asked for a version or the latest; a routed request gives its `arm`);
        `request_ids` one id per row. `role` "shadow" logs a shadow version's answer; `sampled`
        True/False is a sampling decision already made (a shadow record follows its serving
        record's), None draws one. `timestamp`: when it was served, to the microsecond in the record's
        extra fields (default: now, kept to the second in log_metadata only)."""
        # Served now: the writer may get to it later.
        now = time.time() if timestamp is None else timestamp
        # A routed request is logged as addressed to its arm; a shadow one as addressed to the shadow.
        addressed = version_label if role == SHADOW else version_label or arm or None
        return self._enqueue(_predict_log, (model, version, signature, inputs, outputs, addressed, int(now)),
                             (request_ids, arm, role, latency_seconds, timestamp), sampled)

    def record_classify_or_regress(self, method: str, model: str, version: int, signature: str,
                                   request_input, result, *, request_ids: list[str] | None = None,
                                   version_label: str | None = None, arm: str = "",
                                   latency_seconds: float | None = None) -> bool:
        """Queue one served classify or regress request (if sampled) with its result. Never raises."""
        now = time.time()
        return self._enqueue(_classify_or_regress_log, (method, model, version, signature, request_input, result,
                                                        version_label or arm or None, int(now)),
                             (request_ids, arm, SERVING, latency_seconds, None if latency_seconds is None else now),
                             None)

    def _enqueue(self, build: Callable[..., prediction_log_pb2.PredictionLog], args: tuple, extras: tuple,
                 sampled: bool | None) -> bool:
        # The PredictionLog is built by the writer too: making TensorProtos of every input costs
        # more than a request's share of the event loop should. The arrays are not changed later.
        if sampled is None:
            with self._lock:
                sampled = self._random.random() < self.sample_rate
        if not sampled:
            return False
        try:
            if self._closed:
                raise queue.Full
            self._queue.put_nowait((build, args, extras))
            return True
        except queue.Full:
            self._lost(DROPPED, "request log %s: records dropped, the writer's queue of %d is full (the disk is "
                       "slower than the requests, or the log is closed)", self.path, self._queue.maxsize)
            return False

    def _write_forever(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            build, args, extras = item
            try:
                record = tfrecord_bytes(with_extras(build(*args).SerializeToString(), *extras))
            except Exception as error:  # a value TensorFlow cannot make a TensorProto of: that record only
                self._lost(ENCODE_ERROR, "request log %s: a request could not be encoded: %r", self.path, error)
                continue
            try:
                self._file.write(record)
            except OSError as error:
                self._lost(WRITE_ERROR, "request log %s: records lost, writing failed: %s", self.path, error)
            except Exception as error:  # the writer must outlive any surprise, or every later record is lost
                self._lost(WRITE_ERROR, "request log %s: records lost, writing failed: %r", self.path, error)

    def _lost(self, reason: str, message: str, *args) -> None:
        """Count a record that is not in the log; say so at most once per error_log_seconds per reason."""
        if self._counter is not None:
            self._counter.labels(reason).inc()
        now = time.monotonic()
        with self._lock:
            self.errors[reason] += 1
            last = self._warned.get(reason)
            if last is not None and now - last < self.error_log_seconds:
                self._unreported[reason] += 1
                return
            self._warned[reason] = now
            unreported = self._unreported.pop(reason, 0)
        log.warning(message + (f" ({unreported} more since the last such warning)" if unreported else ""), *args)

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Write what is queued (waiting at most `timeout` seconds) and close the file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
            stop_queued = 1
        except queue.Full:
            stop_queued = 0
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():  # a hung disk: the daemon writer keeps the file, the server stops anyway
            left = self._queue.qsize() - stop_queued
            log.warning("request log %s: %d queued records not written within %g s of closing",
                        self.path, left, timeout)
            for _ in range(left):
                self._lost(DROPPED, "request log %s: records dropped at close", self.path)
            return
        try:
            self._file.close()
        except OSError as error:
            log.warning("request log %s: closing failed: %s", self.path, error)


def log_files(pattern: str) -> list[str]:
    """The files of a request log: those matching a glob pattern; a plain path (the server's
    --request_log_file) takes its rotated files too."""
    files = set(tf.io.gfile.glob(pattern))
    folder, name = os.path.split(pattern)
    if name and not re.search(r"[*?[]", pattern) and tf.io.gfile.isdir(folder or "."):
        rotated = _rotated_name(name)
        files.update(os.path.join(folder, other) for other in tf.io.gfile.listdir(folder or ".")
                     if rotated.match(other))
    return sorted(files)


def _read_file(path: str) -> Iterator[tuple[prediction_log_pb2.PredictionLog, bytes]]:
    """A file's records, each with its bytes as stored; one cut short at the end (being written, or a
    crash) is skipped with a warning."""
    count = 0
    try:
        for record in tf.data.TFRecordDataset(path):
            count += 1
            data = record.numpy()
            try:
                entry = prediction_log_pb2.PredictionLog.FromString(data)
            except DecodeError:
                log.warning("request log %s: record %d is not a PredictionLog; skipped", path, count)
                continue
            yield entry, data
    except tf.errors.DataLossError as error:
        log.warning("request log %s: skipped the end of the file after %d records, a record cut short or corrupt "
                    "(%s)", path, count, error.message.split(" [Op:")[0])
    except tf.errors.NotFoundError:
        log.warning("request log %s: gone before it was read (rotated or removed meanwhile); skipped", path)


class LoggedCall(NamedTuple):
    """One logged answer: a caller's (role "serving") or a shadow version's (role "shadow")."""
    entry: prediction_log_pb2.PredictionLog
    request_ids: list[str]  # one per row, in row order; [] for records logged without them
    arm: str  # the label the router chose; "" when the request was not routed
    role: str  # "serving" or "shadow"
    latency_seconds: float  # server-side seconds of the call (the shadow call's own); 0 when not logged
    version: int  # the version that answered
    timestamp: float  # Unix seconds it was served


def _version_of(entry: prediction_log_pb2.PredictionLog) -> int:
    return entry.log_metadata.model_spec.version.value


def read_calls(pattern: str) -> Iterator[LoggedCall]:
    """Every whole record of the files log_files(pattern) names, serving and shadow, with what the
    server knew of the call. Records of older logs and TF Serving's read as unrouted serving calls."""
    for path in log_files(pattern):
        for entry, data in _read_file(path):
            extras = extras_of(data)
            timestamp = (extras.timestamp_seconds if extras.timestamp_seconds is not None
                         else float(entry.log_metadata.timestamp_secs))
            yield LoggedCall(entry, extras.request_ids, extras.arm, extras.role, extras.latency_seconds,
                             _version_of(entry), timestamp)


def read_logs(pattern: str) -> Iterator[prediction_log_pb2.PredictionLog]:
    """Every whole record of the files log_files(pattern) names that answered a caller (shadow
    answers are left out: read_calls has them)."""
    for entry, _ in read_records(pattern):
        yield entry


def read_records(pattern: str) -> Iterator[tuple[prediction_log_pb2.PredictionLog, list[str]]]:
    """Every whole record of the files log_files(pattern) names that answered a caller, with its
    request ids: one per served row, in row order ([] for a record logged without them, e.g. by TF
    Serving). Shadow answers are left out, so quality and skew checks see what callers got."""
    for call in read_calls(pattern):
        if call.role != SHADOW:
            yield call.entry, call.request_ids


def read_predict_logs(pattern: str) -> Iterator[prediction_log_pb2.PredictLog]:
    for entry in read_logs(pattern):
        if entry.WhichOneof("log_type") == "predict_log":
            yield entry.predict_log


def examples_of(entry: prediction_log_pb2.PredictionLog) -> list[tf.train.Example]:
    """The tf.Examples a logged request sent, one per served row, in row order: those of a predict
    request with an `examples` input (serving_default), and of a classify or regress request (a
    context merged into each, as served); [] for other requests (serving_raw's named features)."""
    kind = entry.WhichOneof("log_type")
    if kind == "predict_log":
        inputs = entry.predict_log.request.inputs
        serialized = tf.make_ndarray(inputs["examples"]).reshape(-1) if "examples" in inputs else []
    elif kind in ("classify_log", "regress_log"):
        serialized = classify_regress.serialized_examples(getattr(entry, kind).request.input)
    else:
        return []
    return [tf.train.Example.FromString(row) for row in serialized]


def logged_examples(pattern: str) -> Iterator[tf.train.Example]:
    """The tf.Examples clients sent, one per served row: serving_default predict requests,
    and classify and regress requests (a context merged into each example, as served)."""
    for entry in read_logs(pattern):
        yield from examples_of(entry)
