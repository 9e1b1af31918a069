"""The request log's writer under faults: a full queue, failing writes, restarts, rotation, cut-short files."""
from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time

import numpy as np
import pytest

from serving.server import request_log
from serving.server.metrics import ServerMetrics
from serving.server.request_log import (
    RequestLog,
    examples_of,
    log_files,
    logged_examples,
    read_logs,
    read_predict_logs,
    read_records,
)


def _record(log: RequestLog, n: int) -> bool:
    """Log one predict request whose input is the number n, so a test can tell records apart."""
    return log.record("m", 1, "serving_default", {"x": np.array([float(n)], np.float32)},
                      {"y": np.array([[0.5]], np.float32)})


def _numbers(pattern: str) -> list[int]:
    import tensorflow as tf
    return [int(tf.make_ndarray(entry.request.inputs["x"])[0]) for entry in read_predict_logs(pattern)]


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_full_queue_drops_and_counts_records_without_delaying_the_caller(tmp_path, monkeypatch):
    release, real_write = threading.Event(), request_log._write_all

    def blocked_write(fd, data):
        release.wait(10)
        real_write(fd, data)

    monkeypatch.setattr(request_log, "_write_all", blocked_write)
    metrics = ServerMetrics()
    log = RequestLog(str(tmp_path / "requests.tfrecord"), metrics=metrics, queue_size=3)
    assert _record(log, 0)
    _wait_for(lambda: log._queue.empty())  # the writer holds record 0, blocked
    started = time.perf_counter()
    queued = [_record(log, n) for n in range(1, 11)]
    assert time.perf_counter() - started < 0.5, "record() must not wait for the disk"
    assert queued == [True] * 3 + [False] * 7
    assert log.errors[request_log.DROPPED] == 7
    assert metrics.request_log_errors.labels("dropped")._value.get() == 7
    release.set()
    log.close()
    assert _numbers(str(tmp_path / "requests.tfrecord")) == [0, 1, 2, 3]


def test_failed_writes_are_counted_logged_once_and_the_writer_carries_on(tmp_path, monkeypatch, caplog):
    real_write, disk_full = request_log._write_all, threading.Event()

    def write(fd, data):
        if disk_full.is_set():  # as a full disk does: part of the record goes out, then ENOSPC
            os.write(fd, data[:len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(request_log, "_write_all", write)
    metrics = ServerMetrics()
    path = str(tmp_path / "requests.tfrecord")
    log = RequestLog(path, metrics=metrics)
    assert _record(log, 0)
    _wait_for(lambda: log._queue.empty())
    disk_full.set()
    with caplog.at_level(logging.WARNING, logger="serving.request_log"):
        assert all(_record(log, n) for n in range(1, 6))  # the caller never sees the error
        _wait_for(lambda: log.errors[request_log.WRITE_ERROR] == 5)
    assert metrics.request_log_errors.labels("write_error")._value.get() == 5
    warnings = [r.getMessage() for r in caplog.records if "writing failed" in r.getMessage()]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    disk_full.clear()
    _record(log, 6)
    log.close()
    # Each cut-short record was taken back: the file is whole records, and nothing after them is lost.
    assert _numbers(path) == [0, 6]
    assert log_files(path) == [path]


def test_a_restart_appends_to_the_log_instead_of_truncating_it(tmp_path):
    path = str(tmp_path / "logs" / "requests.tfrecord")
    first = RequestLog(path)
    for n in range(3):
        _record(first, n)
    first.close()
    second = RequestLog(path)
    for n in range(3, 5):
        _record(second, n)
    second.close()
    assert _numbers(path) == [0, 1, 2, 3, 4]
    assert log_files(str(tmp_path / "logs" / "*")) == [path]


def test_a_cut_short_record_is_skipped_by_readers_and_never_appended_to(tmp_path, caplog):
    path = str(tmp_path / "requests.tfrecord")
    log = RequestLog(path)
    for n in range(4):
        _record(log, n)
    log.close()
    os.truncate(path, os.path.getsize(path) - 3)  # a crash in the middle of the last write
    with caplog.at_level(logging.WARNING, logger="serving.request_log"):
        assert _numbers(path) == [0, 1, 2]
    assert any(path in r.getMessage() and "after 3 records" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serving.request_log"):
        restarted = RequestLog(path)
    assert any("not a whole record" in r.getMessage() for r in caplog.records)
    _record(restarted, 9)
    restarted.close()
    files = log_files(path)
    assert len(files) == 2 and files[-1] == path  # the cut-short file was rotated aside, kept as it was
    assert _numbers(path) == [0, 1, 2, 9]


def test_rotation_by_size_keeps_at_most_max_files_of_the_newest_records(tmp_path):
    path = str(tmp_path / "requests.tfrecord")
    one = len(request_log.tfrecord_bytes(request_log._predict_log(  # the time stamp as record() sets it
        "m", 1, "serving_default", {"x": np.array([1.0], np.float32)},
        {"y": np.array([[0.5]], np.float32)}, timestamp_secs=int(time.time())).SerializeToString()))
    log = RequestLog(path, max_bytes=3 * one, max_files=3)
    for n in range(20):
        _record(log, n)
    log.close()
    files = log_files(path)
    assert len(files) == 3 and files[-1] == path
    assert all(os.path.getsize(f) <= 3 * one for f in files)
    rotated = [os.path.basename(f) for f in files[:-1]]
    assert all(request_log._rotated_name("requests.tfrecord").match(name) for name in rotated), rotated
    # Two full rotated files and the current one: the newest records, oldest first.
    numbers = _numbers(path)
    assert numbers == list(range(20 - len(numbers), 20)) and len(numbers) == 3 + 3 + 2
    assert _numbers(str(tmp_path / "requests*.tfrecord")) == numbers


def test_rotation_by_age(tmp_path):
    path = str(tmp_path / "requests.tfrecord")
    log = RequestLog(path, max_age_seconds=0.05, max_files=0)
    for n in range(3):
        _record(log, n)
        _wait_for(lambda: log._queue.empty())
        time.sleep(0.06)
    log.close()
    assert len(log_files(path)) == 3 and _numbers(path) == [0, 1, 2]


def test_the_log_folder_replaced_by_a_file_loses_records_until_it_is_back(tmp_path):
    folder = tmp_path / "logs"
    path = str(folder / "requests.tfrecord")
    log = RequestLog(path)
    _record(log, 0)
    _wait_for(lambda: log._queue.empty())
    shutil.move(str(folder), str(tmp_path / "moved"))
    folder.write_text("not a folder")
    _record(log, 1)
    _wait_for(lambda: log.errors[request_log.WRITE_ERROR] == 1)
    folder.unlink()
    _record(log, 2)
    log.close()
    assert _numbers(path) == [2]  # written to a new file where the log belongs, not to the moved one
    assert _numbers(str(tmp_path / "moved" / "requests.tfrecord")) == [0]


def test_an_input_that_cannot_be_encoded_is_counted_and_skipped(tmp_path):
    path = str(tmp_path / "requests.tfrecord")
    log = RequestLog(path)
    log.record("m", 1, "serving_default", {"x": np.array([{"a": 1}], dtype=object)}, {})
    _record(log, 1)
    log.close()
    assert log.errors[request_log.ENCODE_ERROR] == 1 and _numbers(path) == [1]


def test_close_waits_a_bounded_time_for_a_hung_disk(tmp_path, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(request_log, "_write_all", lambda fd, data: release.wait(10))
    log = RequestLog(str(tmp_path / "requests.tfrecord"))
    for n in range(3):
        _record(log, n)
    started = time.perf_counter()
    log.close(timeout=0.2)
    assert time.perf_counter() - started < 1
    assert log.errors[request_log.DROPPED] == 2  # the two queued behind the hung write
    assert not _record(log, 4)
    release.set()


def test_metrics_show_every_reason_at_zero_from_the_start(tmp_path):
    metrics = ServerMetrics()
    RequestLog(str(tmp_path / "requests.tfrecord"), metrics=metrics).close()
    text = metrics.exposition().decode()
    for reason in request_log.REASONS:
        assert f'model_server_request_log_errors_total{{reason="{reason}"}} 0.0' in text


def test_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="sample rate"):
        RequestLog(str(tmp_path / "x"), sample_rate=0)
    with pytest.raises(ValueError, match="queue size"):
        RequestLog(str(tmp_path / "x"), queue_size=0)
    with pytest.raises(ValueError, match="local path"):
        RequestLog("gs://bucket/requests.tfrecord")
    with pytest.raises(OSError):  # a folder that cannot be made: the server refuses to start
        (tmp_path / "file").write_text("")
        RequestLog(str(tmp_path / "file" / "requests.tfrecord"))


def test_readers_of_an_old_single_file_log_and_of_tensorflows_own_writer(tmp_path):
    import tensorflow as tf
    path = str(tmp_path / "old.tfrecord")
    entry = request_log._predict_log("m", 1, "serving_default",
                                     {"examples": np.array([tf.train.Example().SerializeToString()])}, {})
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(entry.SerializeToString())
    assert len(list(read_logs(path))) == 1 and len(list(logged_examples(path))) == 1
    # Our framing is byte for byte TensorFlow's.
    assert open(path, "rb").read() == request_log.tfrecord_bytes(entry.SerializeToString())


def _fare_example(fare: float) -> bytes:
    import tensorflow as tf
    return tf.train.Example(features=tf.train.Features(feature={
        "fare": tf.train.Feature(float_list=tf.train.FloatList(value=[fare]))})).SerializeToString()


def test_records_keep_the_served_version_the_addressed_label_the_time_and_the_row_ids(tmp_path):
    from tensorflow_serving.apis import input_pb2, regression_pb2
    path = str(tmp_path / "requests.tfrecord")
    log = RequestLog(path)
    started = int(time.time())
    log.record("m", 3, "serving_default", {"examples": np.array([_fare_example(1.0), _fare_example(2.0)], object)},
               {"y": np.array([[0.75], [1.25]], np.float32)}, request_ids=["a-0", "a-1"], version_label="stable")
    _record(log, 7)  # no ids, addressed by version (or the latest)
    request_input = input_pb2.Input()
    request_input.example_list.examples.add().ParseFromString(_fare_example(4.0))
    result = regression_pb2.RegressionResult()
    result.regressions.add(value=2.25)
    log.record_classify_or_regress("regress", "m", 3, "regression", request_input, result, request_ids=["r"],
                                   version_label="canary")
    log.close()
    (predict, predict_ids), (plain, plain_ids), (regress, regress_ids) = read_records(path)
    assert predict_ids == ["a-0", "a-1"] and plain_ids == [] and regress_ids == ["r"]
    for entry, signature in ((predict, "serving_default"), (plain, "serving_default"), (regress, "regression")):
        spec = entry.log_metadata.model_spec
        assert (spec.name, spec.signature_name) == ("m", signature)
        assert started <= entry.log_metadata.timestamp_secs <= time.time()
    assert predict.log_metadata.model_spec.version.value == 3 and plain.log_metadata.model_spec.version.value == 1
    # The request as the client addressed it; the response names the version that served it.
    request_spec = predict.predict_log.request.model_spec
    assert request_spec.version_label == "stable" and not request_spec.HasField("version")
    assert predict.predict_log.response.model_spec.version.value == 3
    assert plain.predict_log.request.model_spec.version.value == 1
    assert regress.regress_log.request.model_spec.version_label == "canary"
    assert regress.regress_log.response.model_spec.version.value == 3
    # Each row's example beside its id, as a reader pairs them.
    assert [(request_id, example.features.feature["fare"].float_list.value[0])
            for request_id, example in zip(predict_ids, examples_of(predict))] == [("a-0", 1.0), ("a-1", 2.0)]
    assert examples_of(plain) == []  # no tf.Examples: named inputs
    assert [e.features.feature["fare"].float_list.value[0] for e in logged_examples(path)] == [1.0, 2.0, 4.0]
    assert [entry for entry, _ in read_records(path)] == list(read_logs(path))


def test_the_command_line_refuses_a_request_log_it_cannot_write(tmp_path, capsys):
    from serving.server.model_server import main
    (tmp_path / "file").write_text("")
    common = ["--model_name", "m", "--model_base_path", str(tmp_path), "--request_log_file"]
    assert main(common + [str(tmp_path / "file" / "requests.tfrecord")]) == 2
    assert "serving: " in capsys.readouterr().err
    assert main(common + [str(tmp_path / "requests.tfrecord"), "--request_log_queue_size", "0"]) == 2
    assert "queue size must be positive" in capsys.readouterr().err
