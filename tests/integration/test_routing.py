"""Server-side canary routing on a real server: two versions of the exported taxi model behind the
labels `stable` and `canary`, a routing file rewritten while clients call, REST and gRPC."""
from __future__ import annotations

import base64
import json
import logging
import math
import os
import shutil
import threading
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from models import features as F
from serving.clients.request_encoding import read_csv_rows, row_to_example
from serving.server.metrics import DEFAULT_PATH as METRICS_PATH
from serving.server.metrics import ServerMetrics
from serving.server.model_server import ModelServer
from serving.server.model_store import ModelStore, VersionPolicy
from serving.server.request_log import RequestLog, read_calls, read_records
from serving.server.routing import RoutingFileError, parse_routing

pytestmark = pytest.mark.slow
NAME = "taxi-tips"
STABLE, CANARY = 1, 2  # the versions behind the labels


def _write_routing(path: str, weights: dict, **extra) -> None:
    """As the release command writes it: a whole new file renamed over the old one."""
    with open(f"{path}.tmp", "w") as file:
        json.dump({"models": {NAME: {"weights": weights, **extra}}}, file)
    os.replace(f"{path}.tmp", path)


def _route(server: ModelServer, path: str, weights: dict, **extra) -> None:
    """Rewrite the routing file and wait until the server routes by it."""
    _write_routing(path, weights, **extra)
    wanted = parse_routing(open(path).read())[NAME]
    deadline = time.monotonic() + 20
    while server.router.route_of(NAME) != wanted:
        assert time.monotonic() < deadline, "the server did not apply the rewritten routing file"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def canary(tmp_path_factory, exported_model_dir, small_csv):
    work = tmp_path_factory.mktemp("routing")
    base = work / NAME
    for version in (STABLE, CANARY):
        shutil.copytree(exported_model_dir, base / str(version))
    routing = str(work / "routing.json")
    _write_routing(routing, {"stable": 100})
    metrics = ServerMetrics()
    log_path = str(work / "logs" / "requests.tfrecord")
    store = ModelStore(NAME, str(base), poll_seconds=0, policy=VersionPolicy("all"),
                       labels={"stable": STABLE, "canary": CANARY})
    server = ModelServer({NAME: store}, metrics=metrics, metrics_path=METRICS_PATH,
                         request_log=RequestLog(log_path, metrics=metrics), routing_file=routing,
                         routing_poll_seconds=0.1).start()
    row = next(iter(read_csv_rows(str(small_csv))))
    example = row_to_example(row, F.feature_types()).SerializeToString()
    yield server, routing, log_path, example
    server.stop()


def _rest(server, example: bytes, key: str | None = None, path: str = f"/v1/models/{NAME}:predict",
          session=requests, request_id: str | None = None) -> requests.Response:
    headers = {"x-routing-key": key} if key else {}
    if request_id:
        headers["x-request-id"] = request_id
    return session.post(f"http://127.0.0.1:{server.rest_port}{path}", headers=headers, timeout=30,
                        json={"instances": [{"b64": base64.b64encode(example).decode()}]})


def _grpc(stub, example: bytes, key: str | None = None, **spec) -> tuple[predict_pb2.PredictResponse, dict]:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME, **spec))
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([example]))
    response, call = stub.Predict.with_call(request, metadata=[("x-routing-key", key)] if key else None, timeout=30)
    return response, dict(call.trailing_metadata())


@pytest.mark.timeout(180)
def test_the_same_key_reaches_the_same_arm_over_rest_and_grpc_and_says_so(canary):
    server, routing, _, example = canary
    _route(server, routing, {"stable": 50, "canary": 50})
    route = parse_routing(open(routing).read())[NAME]
    keys = [f"rider-{number}" for number in range(30)]
    with requests.Session() as session, grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for key in keys:
            arms = set()
            for _ in range(2):
                reply = _rest(server, example, key, session=session)
                assert reply.status_code == 200, reply.text
                arms.add((reply.headers["x-model-arm"], reply.headers["x-model-version"]))
                response, trailing = _grpc(stub, example, key)
                arms.add((trailing["x-model-arm"], trailing["x-model-version"]))
                assert str(response.model_spec.version.value) == trailing["x-model-version"]
                assert trailing["x-request-id"]  # the request id still comes back
            # One arm per key, whichever front end, and the one the routing file's rule gives.
            arm = route.pick(NAME, key)
            assert arms == {(arm, str(STABLE if arm == "stable" else CANARY))}, key
    assert {route.pick(NAME, key) for key in keys} == {"stable", "canary"}


@pytest.mark.timeout(300)
def test_the_split_matches_the_weights_and_raising_it_only_moves_keys_to_the_canary(canary):
    server, routing, _, example = canary
    keys = [f"trip-{number}" for number in range(1000)]

    def arms() -> dict[str, str]:
        with requests.Session() as session:
            return {key: _rest(server, example, key, session=session).headers["x-model-arm"] for key in keys}

    split = {}
    for share in (0.1, 0.3):
        _route(server, routing, {"stable": 100 * (1 - share), "canary": 100 * share})
        split[share] = arms()
        canaries = sum(arm == "canary" for arm in split[share].values())
        tolerance = 4 * math.sqrt(len(keys) * share * (1 - share))  # binomial, 4 sigma
        assert abs(canaries - len(keys) * share) <= tolerance, (share, canaries)
    moved = {(split[0.1][key], split[0.3][key]) for key in keys if split[0.1][key] != split[0.3][key]}
    assert moved == {("stable", "canary")}


def _errors_naming(caplog, path: str) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR and path in record.getMessage()]


@pytest.mark.timeout(180)
def test_rewriting_the_file_under_load_drops_no_request_and_a_bad_file_keeps_the_routing(canary, caplog):
    server, routing, _, example = canary
    _route(server, routing, {"stable": 100, "canary": 0})
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                reply = _rest(server, example, session=session)  # no key: a random pick by weight
                seen.append((reply.status_code, reply.headers.get("x-model-arm", "")))

    def answered(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(seen) < count:
            assert time.monotonic() < deadline and thread.is_alive(), "the client stopped getting answers"
            time.sleep(0.02)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        answered(20)
        before = len(seen)
        _route(server, routing, {"stable": 0, "canary": 100})
        switched = len(seen) + 1  # the call under way may have been routed by the old file
        answered(switched + 20)
        with caplog.at_level(logging.ERROR, logger="serving.routing"):
            _write_routing(routing, {"stable": 0, "canary": 0})  # a broken edit
            deadline = time.monotonic() + 20
            # Earlier INFO lines name the file too: wait for the error itself.
            while not _errors_naming(caplog, routing):
                assert time.monotonic() < deadline, "the bad routing file was not reported"
                time.sleep(0.05)
        answered(len(seen) + 20)
    finally:
        stop.set()
        thread.join(30)
    assert {status for status, _ in seen} == {200}, "a request failed while the routing file changed"
    assert before > 0 and {arm for _, arm in seen[:before]} == {"stable"}
    assert {arm for _, arm in seen[switched:]} == {"canary"}  # the bad file changed nothing
    [message] = _errors_naming(caplog, routing)
    assert "every weight is 0" in message and "the routing in force stays" in message


@pytest.mark.timeout(120)
def test_requests_naming_a_version_or_a_label_are_not_routed(canary):
    server, routing, _, example = canary
    _route(server, routing, {"stable": 0, "canary": 100})
    for path, version in ((f"/v1/models/{NAME}/versions/{STABLE}:predict", STABLE),
                          (f"/v1/models/{NAME}/labels/stable:predict", STABLE),
                          (f"/v1/models/{NAME}:predict", CANARY)):
        reply = _rest(server, example, "rider-1", path=path)
        assert reply.status_code == 200 and reply.headers["x-model-version"] == str(version), path
        assert reply.headers.get("x-model-arm") == ("canary" if version == CANARY else None), path
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        _, trailing = _grpc(stub, example, "rider-1", version_label="stable")
        assert trailing["x-model-version"] == str(STABLE) and "x-model-arm" not in trailing


@pytest.mark.timeout(120)
def test_a_label_that_names_no_loaded_version_falls_back_to_stable_and_is_counted(canary):
    server, routing, _, example = canary
    _route(server, routing, {"stable": 0, "blue": 100})  # no version carries `blue`
    reply = _rest(server, example, "rider-1")
    assert reply.status_code == 200
    assert (reply.headers["x-model-arm"], reply.headers["x-model-version"]) == ("stable", str(STABLE))
    fallbacks = server.metrics.registry.get_sample_value("model_server_routing_fallbacks_total",
                                                         {"model": NAME, "label": "blue"})
    assert fallbacks >= 1


@pytest.mark.timeout(120)
def test_arms_versions_and_scores_are_in_the_metrics_and_the_request_log(canary):
    server, routing, log_path, example = canary
    _route(server, routing, {"stable": 50, "canary": 50})
    route = parse_routing(open(routing).read())[NAME]
    stable_key = next(f"k{n}" for n in range(100) if route.pick(NAME, f"k{n}") == "stable")
    canary_key = next(f"k{n}" for n in range(100) if route.pick(NAME, f"k{n}") == "canary")
    for key, request_id in ((stable_key, "m-stable"), (canary_key, "m-canary")):
        assert _rest(server, example, key, request_id=request_id).status_code == 200
    assert _rest(server, example, path=f"/v1/models/{NAME}/labels/stable:predict").status_code == 200
    metrics = requests.get(f"http://127.0.0.1:{server.rest_port}{METRICS_PATH}", timeout=10).text
    for arm, version in (("stable", STABLE), ("canary", CANARY)):
        assert (f'model_server_routed_requests_total{{arm="{arm}",model="{NAME}",status="OK",'
                f'version="{version}"}}') in metrics
        assert f'model_server_prediction_score_bucket{{arm="{arm}",le="0.05",model="{NAME}",version="{version}"}}' \
            in metrics
        assert f'model_server_routing_weight{{arm="{arm}",model="{NAME}"}} 0.5' in metrics
    assert f'model_server_prediction_score_count{{arm="",model="{NAME}",version="{STABLE}"}}' in metrics  # by label

    deadline = time.monotonic() + 20
    while True:
        calls = {call.request_ids[0]: call for call in read_calls(log_path) if call.request_ids
                 and call.request_ids[0] in ("m-stable", "m-canary")}
        if len(calls) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for request_id, arm, version in (("m-stable", "stable", STABLE), ("m-canary", "canary", CANARY)):
        call = calls[request_id]
        assert (call.arm, call.role, call.version) == (arm, "serving", version)
        assert 0 < call.latency_seconds < 30 and abs(call.timestamp - time.time()) < 120
        assert call.entry.predict_log.request.model_spec.version_label == arm
    # The readers the quality and skew checks use see the same serving records.
    assert {ids[0] for _, ids in read_records(log_path) if ids} >= {"m-stable", "m-canary"}


def test_a_bad_routing_file_at_start_stops_the_server_before_it_listens(tmp_path, exported_model_dir):
    routing = tmp_path / "routing.json"
    routing.write_text('{"models": {"taxi-tips": {"weights": {"stable": -5}}}}')
    server = ModelServer({NAME: ModelStore(NAME, str(tmp_path / NAME), poll_seconds=0)}, routing_file=str(routing))
    with pytest.raises(RoutingFileError, match=r"routing\.json, model 'taxi-tips': the weight of 'stable' is -5"):
        server.start()
    assert server.grpc_port == server.rest_port == 0
    server.stop()
