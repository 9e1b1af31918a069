"""The request log under faults, through the real server: a full disk, a full queue, restarts,
rotation and a cut-short file. What a user sees: answers, the error counter, the records kept."""
from __future__ import annotations

import base64
import errno
import logging
import os
import re
import subprocess
import threading
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from pipeline.data_validation.serving_data import serving_statistics
from pipeline.data_validation.statistics_io import load_schema
from serving.server import request_log
from serving.server.metrics import DEFAULT_PATH as METRICS_PATH
from serving.server.metrics import ServerMetrics
from serving.server.model_server import ModelServer
from serving.server.model_store import ModelStore
from serving.server.request_log import RequestLog, log_files, logged_examples, read_logs, read_records
from tests.conftest import SCHEMA

NAME = "tips"


class _TinyModel(tf.Module):
    """Answers 0.5 * fare + 0.25 for each tf.Example: quick to save and load, exact to check."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        fare = tf.io.parse_example(examples, {"fare": tf.io.FixedLenFeature([1], tf.float32, [0.0])})["fare"]
        return {"tip_probability": fare * 0.5 + 0.25}


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny") / NAME
    module = _TinyModel()
    tf.saved_model.save(module, str(base / "1"), signatures={"serving_default": module.serve})
    return str(base)


def _serve(model_base: str, log: RequestLog, metrics: ServerMetrics) -> ModelServer:
    return ModelServer({NAME: ModelStore(NAME, model_base, poll_seconds=0)}, metrics=metrics,
                       metrics_path=METRICS_PATH, request_log=log).start()


def _example(fare: float) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "fare": tf.train.Feature(float_list=tf.train.FloatList(value=[fare]))})).SerializeToString()


def _rest_predict(server: ModelServer, fares: list[float]) -> list[float]:
    instances = [{"b64": base64.b64encode(_example(fare)).decode()} for fare in fares]
    reply = requests.post(f"http://127.0.0.1:{server.rest_port}/v1/models/{NAME}:predict",
                          json={"instances": instances}, timeout=10)
    assert reply.status_code == 200, reply.text
    return [row[0] for row in reply.json()["predictions"]]


def _grpc_predict(server: ModelServer, fares: list[float]) -> list[float]:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME))
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([_example(fare) for fare in fares], tf.string))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
    return tf.make_ndarray(reply.outputs["tip_probability"]).reshape(-1).tolist()


def _expected(fares: list[float]) -> list[float]:
    return [0.5 * fare + 0.25 for fare in fares]


def _errors(server: ModelServer, reason: str) -> float:
    """The lost-record counter as Prometheus scrapes it."""
    text = requests.get(f"http://127.0.0.1:{server.rest_port}{METRICS_PATH}", timeout=10).text
    found = re.search(rf'^model_server_request_log_errors_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    assert found, text
    return float(found.group(1))


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _fares(pattern: str) -> list[float]:
    return [example.features.feature["fare"].float_list.value[0] for example in logged_examples(pattern)]


def _fill_up(folder: str) -> None:
    fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    finally:
        os.close(fd)


@pytest.fixture(params=["tmpfs", "dev_full"])
def full_disk(request, tmp_path):
    """(log path, fill(), free()): a real ENOSPC for the log's writes between fill() and free().
    tmpfs: a 64 KiB file system, filled up; dev_full: the log file replaced by a link to /dev/full."""
    if request.param == "tmpfs":
        mount = tmp_path / "disk"
        mount.mkdir()
        try:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                     capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as error:
            pytest.skip(f"cannot mount a tmpfs: {error}")
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        try:
            os.makedirs(mount / "logs")
            yield (str(mount / "logs" / "requests.tfrecord"), lambda: _fill_up(str(mount)),
                   lambda: os.remove(mount / "filler"))
        finally:
            if subprocess.run(["umount", str(mount)], capture_output=True, timeout=10).returncode != 0:
                subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)
    else:
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full")
        path = str(tmp_path / "logs" / "requests.tfrecord")

        def fill():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink("/dev/full", path + ".link")
            os.replace(path + ".link", path)

        yield path, fill, lambda: os.remove(path)


def test_a_full_disk_loses_log_records_but_never_a_request(full_disk, model_base):
    path, fill, free = full_disk
    metrics = ServerMetrics()
    server = _serve(model_base, RequestLog(path, metrics=metrics), metrics)
    try:
        assert _errors(server, "write_error") == 0
        fill()
        for fares in ([2.0], [4.5, 6.0]):
            assert _rest_predict(server, fares) == pytest.approx(_expected(fares))
            assert _grpc_predict(server, fares) == pytest.approx(_expected(fares))
        _wait_for(lambda: _errors(server, "write_error") == 4)
        free()  # space again: the writer picks up with the next record
        assert _grpc_predict(server, [8.0]) == pytest.approx(_expected([8.0]))
    finally:
        server.stop()
    assert _fares(path) == [8.0]
    assert metrics.request_log_errors.labels("dropped")._value.get() == 0


def test_a_full_queue_drops_log_records_but_never_a_request(tmp_path, model_base, monkeypatch):
    release, real_write = threading.Event(), request_log._write_all

    def stuck_disk(fd, data):
        release.wait(10)
        real_write(fd, data)

    monkeypatch.setattr(request_log, "_write_all", stuck_disk)
    metrics = ServerMetrics()
    path = str(tmp_path / "requests.tfrecord")
    server = _serve(model_base, RequestLog(path, metrics=metrics, queue_size=2), metrics)
    fares = [float(n) for n in range(8)]
    try:
        assert _rest_predict(server, fares[:1]) == _expected(fares[:1])
        _wait_for(server.request_log._queue.empty)  # the writer holds the first record, stuck
        for fare in fares[1:]:
            assert _rest_predict(server, [fare]) == pytest.approx(_expected([fare]))
        assert _errors(server, "dropped") == 8 - 1 - 2  # one being written, two queued
        release.set()
    finally:
        server.stop()
    assert _fares(path) == fares[:3]


def test_a_restart_keeps_the_earlier_records(tmp_path, model_base):
    path = str(tmp_path / "logs" / "requests.tfrecord")
    for fares in ([1.0, 2.0, 3.0], [4.0, 5.0]):
        metrics = ServerMetrics()
        server = _serve(model_base, RequestLog(path, metrics=metrics), metrics)
        try:
            for fare in fares:  # over both front ends
                assert (_grpc_predict if fare % 2 else _rest_predict)(server, [fare]) == _expected([fare])
        finally:
            server.stop()
    assert len(list(read_logs(path))) == 5
    assert _fares(str(tmp_path / "logs" / "requests*.tfrecord")) == [1.0, 2.0, 3.0, 4.0, 5.0]
    # Each record keeps its request's id (made by the server) across the restart.
    ids = [request_ids for _, request_ids in read_records(path)]
    assert all(len(row_ids) == 1 for row_ids in ids) and len({row_ids[0] for row_ids in ids}) == 5


def test_rotation_bounds_the_files_and_every_kept_record_is_read(tmp_path, model_base, caplog):
    path = str(tmp_path / "logs" / "requests.tfrecord")
    metrics = ServerMetrics()
    server = _serve(model_base, RequestLog(path, metrics=metrics, max_bytes=1500, max_files=4), metrics)
    sent = [float(n) for n in range(40)]
    try:
        for fare in sent:
            _rest_predict(server, [fare])
    finally:
        server.stop()
    files = log_files(path)
    assert len(files) == 4 and all(os.path.getsize(f) <= 1500 for f in files)
    caplog.clear()  # the server's own lines (a version loaded) are not what is checked here
    with caplog.at_level(logging.WARNING, logger="serving.request_log"):
        kept = _fares(str(tmp_path / "logs" / "requests*.tfrecord"))
    # No reader warning: every kept file is whole records.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # The newest records, in order; the oldest went with the deleted files.
    assert 3 * 2 < len(kept) < 40 and kept == sent[-len(kept):]
    assert _fares(path) == kept  # the log's own path takes its rotated files too


def test_a_cut_short_last_record_is_skipped_and_the_skew_check_reads_the_rest(tmp_path, model_base, caplog):
    path = str(tmp_path / "logs" / "requests.tfrecord")
    metrics = ServerMetrics()
    server = _serve(model_base, RequestLog(path, metrics=metrics), metrics)
    try:
        for fare in (1.0, 2.0, 3.0, 4.0):
            _rest_predict(server, [fare, fare + 10])
    finally:
        server.stop()
    os.truncate(path, os.path.getsize(path) - 5)  # the server died in the middle of a write
    with caplog.at_level(logging.WARNING, logger="serving.request_log"):
        assert _fares(path) == [1.0, 11.0, 2.0, 12.0, 3.0, 13.0]
    assert [r for r in caplog.records if path in r.getMessage() and "cut short" in r.getMessage()]
    statistics = serving_statistics(str(tmp_path / "logs" / "requests*.tfrecord"), load_schema(str(SCHEMA)))
    assert statistics.num_examples == 6
    # A restart does not append behind the cut-short record: it is set aside, new records follow.
    server = _serve(model_base, RequestLog(path, metrics=metrics), metrics)
    try:
        _grpc_predict(server, [5.0])
    finally:
        server.stop()
    assert _fares(path) == [1.0, 11.0, 2.0, 12.0, 3.0, 13.0, 5.0]
    assert len(log_files(path)) == 2
