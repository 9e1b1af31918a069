"""Fault injection against a real model server on loopback ports: what a client would
notice when other clients give up, flood, idle, send slowly or send something hostile."""
from __future__ import annotations

import concurrent.futures
import json
import shutil
import socket
import time

import grpc
import numpy as np
import psutil
import pytest
import requests
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from models import features as F
from models.signatures import OUTPUT_KEY
from serving.clients.request_encoding import read_csv_rows, row_to_example
from serving.server.batching import QUEUE_FULL, Batcher, BatchingParameters
from serving.server.grpc_api import ModelService
from serving.server.metrics import DEFAULT_PATH as METRICS_PATH
from serving.server.model_server import ModelServer
from serving.server.model_store import ModelStore
from serving.tensor_protos import to_tensor_proto

pytestmark = pytest.mark.slow
NAME = "taxi-tips"
TYPES = F.feature_types()


@pytest.fixture(scope="module")
def examples(small_csv) -> list[bytes]:
    return [row_to_example(row, TYPES).SerializeToString() for row in list(read_csv_rows(str(small_csv)))[:20]]


@pytest.fixture(scope="module")
def expected(exported_model_dir, examples) -> np.ndarray:
    function = tf.saved_model.load(str(exported_model_dir)).signatures["serving_default"]
    return function(examples=tf.constant(examples))[OUTPUT_KEY].numpy()


def _model_base(folder, model_dir, versions=(1,)):
    base = folder / NAME
    base.mkdir(parents=True)
    for version in versions:
        shutil.copytree(model_dir, base / str(version))
    return base


def _server(base, **options) -> ModelServer:
    return ModelServer({NAME: ModelStore(NAME, str(base), poll_seconds=0.2)}, **options).start()


def _request(examples: list[bytes]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME))
    request.inputs["examples"].CopyFrom(to_tensor_proto(np.array(examples, dtype=object)))
    return request


def _stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _answer(response) -> np.ndarray:
    return tf.make_ndarray(response.outputs[OUTPUT_KEY])


def _url(server, path):
    return f"http://127.0.0.1:{server.rest_port}{path}"


def _b64_rows(examples: list[bytes]) -> dict:
    import base64
    return {"instances": [{"b64": base64.b64encode(e).decode()} for e in examples]}


def _wait_for(condition, seconds=60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


# ---- batching: callers that give up, and a full queue ----

@pytest.fixture
def batching_server(tmp_path, exported_model_dir):
    """Batches wait 1 s to fill, longer than the 0.3 s deadline of the callers that give up."""
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=1_000_000, num_batch_threads=2))
    server = _server(_model_base(tmp_path, exported_model_dir), batcher=batcher)
    yield server
    server.stop()


def test_callers_that_give_up_while_batched_do_not_wedge_the_server(batching_server, examples, expected):
    server = batching_server
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = _stub(channel)
        # Each in a batch of its own: before the fix, each such batch killed one of the two batch threads.
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as failure:
                stub.Predict(_request(examples[:1]), timeout=0.3)
            assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            time.sleep(1.0)
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            # Three more give up; 20 normal calls then join their open batch and must be answered.
            doomed = [pool.submit(stub.Predict, _request(examples[:1]), timeout=0.3) for _ in range(3)]
            for call in doomed:
                with pytest.raises(grpc.RpcError):
                    call.result()
            started = time.monotonic()
            answers = list(pool.map(lambda i: _answer(stub.Predict(_request([examples[i]]), timeout=10)), range(20)))
        assert time.monotonic() - started < 5
        np.testing.assert_allclose(np.concatenate(answers), expected, atol=1e-6)
        reply = requests.post(_url(server, f"/v1/models/{NAME}:predict"), json=_b64_rows(examples[:2]), timeout=10)
        assert reply.status_code == 200, reply.text
        np.testing.assert_allclose(reply.json()["predictions"], expected[:2], atol=1e-6)


def test_a_rest_caller_that_disconnects_mid_batch_harms_no_one(batching_server, examples, expected):
    server = batching_server
    body = json.dumps(_b64_rows(examples[:1])).encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=5) as raw:
            raw.sendall(f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(0.1)  # queued in the open batch; then the caller goes away
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: requests.post(_url(server, f"/v1/models/{NAME}:predict"),
                                                        json=_b64_rows([examples[i]]), timeout=10), range(8)))
    assert [reply.status_code for reply in replies] == [200] * 8
    np.testing.assert_allclose([reply.json()["predictions"][0] for reply in replies], expected[:8], atol=1e-6)


def test_a_full_batch_queue_sheds_load_with_tf_servings_status(tmp_path, exported_model_dir, examples, expected):
    batcher = Batcher(BatchingParameters(max_batch_size=4, batch_timeout_micros=1_500_000, num_batch_threads=1,
                                         max_enqueued_batches=1))
    server = _server(_model_base(tmp_path, exported_model_dir), batcher=batcher)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = _stub(channel)
            first = stub.Predict.future(_request(examples[:3]), timeout=10)  # opens the one batch allowed
            time.sleep(0.3)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as failure:  # 3 more rows need a second batch
                stub.Predict(_request(examples[3:6]), timeout=10)
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
            assert failure.value.details() == QUEUE_FULL
            reply = requests.post(_url(server, f"/v1/models/{NAME}:predict"), json=_b64_rows(examples[3:6]),
                                  timeout=10)
            assert reply.status_code == 503 and reply.json() == {"error": QUEUE_FULL}
            assert time.monotonic() - started < 1.0, "shed at once, not after waiting"
            np.testing.assert_allclose(_answer(first.result()), expected[:3], atol=1e-6)
            # Once the batch has run, calls are taken again.
            np.testing.assert_allclose(_answer(stub.Predict(_request(examples[3:6]), timeout=10)), expected[3:6],
                                       atol=1e-6)
    finally:
        server.stop()


# ---- health ----

def _health(server, service: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_health_is_not_serving_until_every_model_has_a_version(tmp_path, exported_model_dir):
    base = tmp_path / NAME
    base.mkdir()
    server = _server(base)
    try:
        for service in ("", NAME, "PredictionService", "ModelService"):
            assert _health(server, service) == health_pb2.HealthCheckResponse.NOT_SERVING, service
        staging = tmp_path / "staging"
        shutil.copytree(exported_model_dir, staging)
        staging.rename(base / "1")  # a complete push appears
        assert _wait_for(lambda: _health(server, "") == health_pb2.HealthCheckResponse.SERVING)
        for service in (NAME, "PredictionService", "ModelService"):
            assert _health(server, service) == health_pb2.HealthCheckResponse.SERVING, service
    finally:
        server.stop()


# ---- resource limits, on one server with short REST timeouts ----

@pytest.fixture(scope="module")
def limited(tmp_path_factory, exported_model_dir):
    base = _model_base(tmp_path_factory.mktemp("limits"), exported_model_dir)
    server = _server(base, metrics_path=METRICS_PATH, rest_idle_timeout=1.0, rest_body_timeout=1.0)
    yield server
    server.stop()


def _read_until_closed(raw: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it did (monotonic)."""
    raw.settimeout(seconds)
    received = b""
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            return received, time.monotonic()
        received += chunk


def test_idle_rest_connections_are_closed_after_the_idle_timeout(limited):
    with socket.create_connection(("127.0.0.1", limited.rest_port), timeout=5) as raw:
        raw.sendall(f"GET /v1/models/{NAME} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        started = time.monotonic()
        received, closed_at = _read_until_closed(raw, seconds=10)
    assert received.startswith(b"HTTP/1.1 200") and b"AVAILABLE" in received
    assert 0.5 < closed_at - started < 4, "kept alive for the idle timeout (1 s), then closed"
    with socket.create_connection(("127.0.0.1", limited.rest_port), timeout=5) as raw:  # one that never speaks
        started = time.monotonic()
        received, closed_at = _read_until_closed(raw, seconds=10)
    assert received == b"" and closed_at - started < 4


def test_a_slow_body_is_cut_off(limited):
    with socket.create_connection(("127.0.0.1", limited.rest_port), timeout=5) as raw:
        raw.sendall(f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                    '{"instances": '.encode())
        started = time.monotonic()
        received, closed_at = _read_until_closed(raw, seconds=10)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"did not arrive within 1 seconds" in received
    assert closed_at - started < 4
    assert requests.get(_url(limited, f"/v1/models/{NAME}"), timeout=10).status_code == 200


def _declaring(dtype: int, dims: list[int], **content) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **content)


@pytest.mark.parametrize("proto", [
    _declaring(types_pb2.DT_FLOAT, [2_000_000_000]),  # 8 GB of zeros
    _declaring(types_pb2.DT_STRING, [2_000_000_000], string_val=[b"x"]),  # one string repeated 2e9 times
    _declaring(types_pb2.DT_STRING, [50_000, 50_000], string_val=[b"x"]),
    _declaring(types_pb2.DT_FLOAT, [3], tensor_content=b"1234"),  # content for 1 float, not 3
    _declaring(types_pb2.DT_FLOAT, [2], float_val=[1.0, 2.0, 3.0]),
    _declaring(types_pb2.DT_FLOAT, [-1]),
    _declaring(12345, [1]),
], ids=["float zeros", "repeated string", "2-D repeated string", "short tensor_content", "extra values",
        "negative dimension", "unknown dtype"])
def test_a_tensor_declaring_more_than_it_holds_is_refused_fast(limited, proto):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME))
    request.inputs["examples"].CopyFrom(proto)
    assert request.ByteSize() < 100
    rss = psutil.Process().memory_info().rss
    with grpc.insecure_channel(f"127.0.0.1:{limited.grpc_port}") as channel:
        stub = _stub(channel)
        stub.Predict(_request([b""]), timeout=10)  # connected and warm: the clock is for the refusal only
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as failure:
            stub.Predict(request, timeout=10)
        elapsed = time.monotonic() - started
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details().startswith("tensor parsing error: examples ("), failure.value.details()
    assert elapsed < 1.0
    assert psutil.Process().memory_info().rss - rss < 256 * 1024 * 1024


def test_grpc_keeps_answering_while_a_large_rest_body_is_converted(limited):
    from tensorflow_serving.apis import get_model_status_pb2
    # 800,000 rows to convert, then one that is refused: all of the time goes to reading the body.
    body = b'{"instances": [' + b'{"b64": "CgA="}, ' * 800_000 + b"1]}"
    latencies, done = [], concurrent.futures.Future()

    def poll_status():
        with grpc.insecure_channel(f"127.0.0.1:{limited.grpc_port}") as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=NAME))
            stub.GetModelStatus(request, timeout=10)
            while not done.done():
                started = time.monotonic()
                stub.GetModelStatus(request, timeout=30)
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poller = pool.submit(poll_status)
        time.sleep(0.2)
        started = time.monotonic()
        reply = requests.post(_url(limited, f"/v1/models/{NAME}:predict"), data=body, timeout=60)
        took = time.monotonic() - started
        done.set_result(None)
        poller.result()
    assert reply.status_code == 400 and "Failed to process element: 800000" in reply.json()["error"]
    assert took > 0.5, f"too little work to tell ({took:.2f} s)"
    assert max(latencies) < took / 2, (max(latencies), took)


@pytest.mark.parametrize("body", [
    b'{"instances": ' + b"[" * 100_000,
    b'{"instances": ' + b"[" * 100_000 + b"1.0" + b"]" * 100_000 + b"}",
    # Parses (under Python's recursion limit), but too deep to convert or quote.
    b'{"instances": ' + b"[" * 950 + b'"x"' + b"]" * 950 + b"}",
    b'{"signature_name": ' + b"[" * 950 + b"]" * 950 + b', "instances": [1]}',
], ids=["unclosed", "closed", "just parseable", "in another key"])
def test_deeply_nested_json_is_a_400(limited, body):
    reply = requests.post(_url(limited, f"/v1/models/{NAME}:predict"), data=body, timeout=10)
    assert reply.status_code == 400, reply.text[:300]
    assert reply.json()["error"], reply.text[:300]
    deep_context = b'{"context": {"x": ' + b"[" * 950 + b"]" * 950 + b'}, "examples": [{}]}'
    reply = requests.post(_url(limited, f"/v1/models/{NAME}:classify"), data=deep_context, timeout=10)
    assert reply.status_code == 400, reply.text[:300]


@pytest.mark.parametrize("method, path", [
    ("POST", f"/v1/models/{NAME}/versions/{'9' * 5000}:predict"),
    ("POST", f"/v1/models/{NAME}/versions/{'9' * 5000}:classify"),
    ("GET", f"/v1/models/{NAME}/versions/{'9' * 5000}"),
    ("GET", f"/v1/models/{NAME}/versions/{'9' * 5000}/metadata"),
    ("GET", f"/v1/models/{NAME}/versions/9223372036854775808"),  # int64 max + 1
    ("POST", f"/v1/models/unknown/versions/{'1' * 20}:predict"),  # before the model is looked up
])
def test_a_version_that_is_no_int64_is_a_400_with_tf_servings_message(limited, method, path):
    version = path.split("/versions/")[1].split(":")[0].split("/")[0]
    reply = requests.request(method, _url(limited, path), data=b'{"instances": [1]}', timeout=10)
    assert reply.status_code == 400, reply.text[:300]
    assert reply.json() == {"error": f"Failed to convert version: {version} to numeric."}


def test_a_version_with_leading_zeros_is_read_as_tf_serving_reads_it(limited):
    reply = requests.get(_url(limited, f"/v1/models/{NAME}/versions/{'0' * 30}1"), timeout=10)
    assert reply.status_code == 200 and reply.json()["model_version_status"][0]["version"] == "1"


def _unknown_not_found(server) -> float:
    text = requests.get(_url(server, METRICS_PATH), timeout=10).text
    line = ':tensorflow:serving:request_count_total{model_name="__unknown__",status="NOT_FOUND"} '
    return next((float(row[len(line):]) for row in text.splitlines() if row.startswith(line)), 0.0)


def test_unknown_model_names_add_no_metric_series(limited):
    before = _unknown_not_found(limited)
    with requests.Session() as session:
        for number in range(1000):
            reply = session.post(_url(limited, f"/v1/models/nope-{number}:predict"), data=b'{"instances": [1]}',
                                 timeout=10)
            assert reply.status_code == 404
    with grpc.insecure_channel(f"127.0.0.1:{limited.grpc_port}") as channel:
        for number in range(20):
            with pytest.raises(grpc.RpcError):
                _stub(channel).Predict(predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                    name=f"grpc-nope-{number}")), timeout=10)
    text = requests.get(_url(limited, METRICS_PATH), timeout=10).text
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert "nope-" not in text
    assert _unknown_not_found(limited) - before == 1020
    assert len(series) < 300, len(series)


# ---- the reload RPC's guard ----

class _Aborted(Exception):
    pass


class _FakeContext:
    """What HandleReloadConfigRequest uses of a grpc.ServicerContext, with the peer given."""

    def __init__(self, peer: str):
        self._peer, self.code, self.details = peer, None, None

    def peer(self) -> str:
        return self._peer

    def abort(self, code, details):
        self.code, self.details = code, details
        raise _Aborted(details)


def _reload_request(**models) -> model_management_pb2.ReloadConfigRequest:
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in models.items():
        config.model_config_list.config.add(name=name, base_path=str(base_path), model_platform="tensorflow")
    return model_management_pb2.ReloadConfigRequest(config=config)


@pytest.mark.parametrize("peer, allowed", [
    ("ipv4:127.0.0.1:5555", True), ("ipv4:127.3.4.5:5555", True), ("ipv6:[::1]:5555", True),
    ("ipv6:%5B::1%5D:5555", True), ("unix:/tmp/serving.sock", True), ("ipv6:[::ffff:127.0.0.1]:5555", True),
    ("ipv4:10.1.2.3:5555", False), ("ipv4:192.0.2.7:5555", False), ("ipv6:[2001:db8::1]:5555", False),
    ("ipv6:[::ffff:10.1.2.3]:5555", False), ("garbage", False),
])
def test_the_reload_handler_takes_only_loopback_peers(tmp_path, peer, allowed):
    applied = []
    service = ModelService({}, applied.append, reload_roots=[str(tmp_path)])
    context = _FakeContext(peer)
    if allowed:
        response = service.HandleReloadConfigRequest(_reload_request(other=tmp_path / "other"), context)
        assert response.status.error_code == 0 and len(applied) == 1
        return
    with pytest.raises(_Aborted):
        service.HandleReloadConfigRequest(_reload_request(other=tmp_path / "other"), context)
    assert context.code == grpc.StatusCode.PERMISSION_DENIED and "--allow_remote_reload" in context.details
    assert applied == []
    remote = ModelService({}, applied.append, reload_roots=[str(tmp_path)], allow_remote_reload=True)
    remote.HandleReloadConfigRequest(_reload_request(other=tmp_path / "other"), _FakeContext(peer))
    assert len(applied) == 1


def _outward_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def _reload(target: str, request) -> model_management_pb2.ReloadConfigResponse:
    with grpc.insecure_channel(target) as channel:
        return model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=30)


def test_a_reload_from_another_host_is_refused_over_the_network(tmp_path):
    address = _outward_address()
    if address is None:
        pytest.skip("no non-loopback interface to call from")
    server = ModelServer({}, host=address, reload_roots=[str(tmp_path)]).start(rest_port=-1)
    try:
        with pytest.raises(grpc.RpcError) as failure:
            _reload(f"{address}:{server.grpc_port}", _reload_request(other=tmp_path / "other"))
        assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"ipv4:{address}:" in failure.value.details()
        assert server.models == {}
    finally:
        server.stop()


def test_a_reload_may_only_load_from_the_allowed_folders(tmp_path, exported_model_dir):
    root = tmp_path / "models"
    base = _model_base(root, exported_model_dir)
    outside = tmp_path / "elsewhere"
    shutil.copytree(exported_model_dir, outside / "1")
    (root / "link").symlink_to(outside)
    server = _server(base)  # the default root: the base path served at start
    target = f"127.0.0.1:{server.grpc_port}"
    try:
        for path in (outside, root / NAME / ".." / ".." / "elsewhere", root / "link", root):
            with pytest.raises(grpc.RpcError) as failure:
                _reload(target, _reload_request(**{NAME: base, "other": path}))
            assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "is outside the folders this server loads models from" in failure.value.details()
        assert list(server.models) == [NAME], "a refused reload changes nothing"
        # Inside the root it is taken: a second model from a folder under the served base path.
        assert _reload(target, _reload_request(**{NAME: base, "other": base / "1"})).status.error_code == 0
        assert sorted(server.models) == ["other", NAME]
        assert _reload(target, _reload_request(**{NAME: base})).status.error_code == 0
        assert list(server.models) == [NAME]
    finally:
        server.stop()
