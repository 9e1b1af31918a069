"""Shadow mode on a real server: the exported taxi model serves, and a second copy of it, a version
that fails on every request, or one that takes a second per call runs in its shadow. Whatever the
shadow does, callers get the same status, body and (within noise) latency as without one."""
from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from models import features as F
from models.signatures import OUTPUT_KEY
from serving.clients.request_encoding import read_csv_rows, row_to_example
from serving.server.metrics import ServerMetrics
from serving.server.model_server import ModelServer
from serving.server.model_store import ModelStore, VersionPolicy
from serving.server.request_log import RequestLog, read_calls, read_records

pytestmark = pytest.mark.slow
NAME = "taxi-tips"
STABLE, CANARY, BROKEN, SLOW = 1, 2, 3, 4
SLOW_SECONDS = 1.0


class _BrokenModel(tf.Module):
    """Takes the taxi model's input and fails on every call, as an export bug would."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        tf.debugging.assert_equal(tf.size(examples), -1, message="this version cannot serve")
        return {OUTPUT_KEY: tf.zeros([tf.size(examples), 1])}


class _SlowModel(tf.Module):
    """Answers 0.5 for every row after SLOW_SECONDS: a shadow that cannot keep up with the traffic."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        # TensorFlow's SleepDataset (only reachable through its testing module) is a real op, so the
        # delay is in the SavedModel itself, and costs no CPU that would slow the serving version.
        from tensorflow.python.data.experimental.ops import testing
        waited = tf.data.Dataset.range(1).apply(testing.sleep(int(SLOW_SECONDS * 1e6))).reduce(
            tf.constant(0, tf.int64), lambda total, value: total + value)
        return {OUTPUT_KEY: tf.fill([tf.size(examples), 1], 0.5) + tf.cast(waited, tf.float32)}


def _save(module: tf.Module, path) -> None:
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})


def _write_routing(path: str, shadow: str | None) -> None:
    spec = {"weights": {"stable": 100}, **({"shadow": shadow} if shadow else {})}
    with open(f"{path}.tmp", "w") as file:
        json.dump({"models": {NAME: spec}}, file)
    os.replace(f"{path}.tmp", path)


def _shadow(server: ModelServer, path: str, shadow: str | None) -> None:
    """Name a shadow (None: none) in the routing file and wait until the server uses it."""
    _write_routing(path, shadow)
    deadline = time.monotonic() + 20
    while server.router.route_of(NAME).shadow != shadow:
        assert time.monotonic() < deadline, "the server did not apply the rewritten routing file"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def model_base(tmp_path_factory, exported_model_dir):
    base = tmp_path_factory.mktemp("shadow") / NAME
    for version in (STABLE, CANARY):
        shutil.copytree(exported_model_dir, base / str(version))
    _save(_BrokenModel(), base / str(BROKEN))
    _save(_SlowModel(), base / str(SLOW))
    return base


def _start(work, model_base, **options) -> ModelServer:
    """A server of every version in `model_base`, labelled, routing all traffic to stable."""
    routing = str(work / "routing.json")
    _write_routing(routing, None)
    metrics = ServerMetrics()
    # Half the requests are logged: a shadow answer is logged exactly when its serving answer is.
    request_log = RequestLog(str(work / "logs" / "requests.tfrecord"), sample_rate=0.5, seed=7, metrics=metrics)
    store = ModelStore(NAME, str(model_base), poll_seconds=0, policy=VersionPolicy("all"),
                       labels={"stable": STABLE, "canary": CANARY, "slow": SLOW})
    return ModelServer({NAME: store}, metrics=metrics, request_log=request_log, routing_file=routing,
                       routing_poll_seconds=0.1, **options).start()


@pytest.fixture(scope="module")
def examples(small_csv) -> list[bytes]:
    return [row_to_example(row, F.feature_types()).SerializeToString()
            for row in list(read_csv_rows(str(small_csv)))[:40]]


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory, model_base, examples):
    work = tmp_path_factory.mktemp("shadowed")
    server = _start(work, model_base)
    yield server, str(work / "routing.json"), str(work / "logs" / "requests.tfrecord"), examples
    server.stop()


def _post(server, example: bytes, request_id: str, session) -> tuple[requests.Response, float]:
    started = time.perf_counter()
    reply = session.post(f"http://127.0.0.1:{server.rest_port}/v1/models/{NAME}:predict", timeout=30,
                         headers={"x-request-id": request_id},
                         json={"instances": [{"b64": base64.b64encode(example).decode()}]})
    return reply, time.perf_counter() - started


def _answers(server, examples: list[bytes], prefix: str) -> list[tuple[int, str, str, float]]:
    """(status, body, version header, seconds) of one REST call per example, in turn."""
    with requests.Session() as session:
        replies = [_post(server, example, f"{prefix}-{n}", session) for n, example in enumerate(examples)]
    return [(reply.status_code, reply.text, reply.headers.get("x-model-version"), seconds)
            for reply, seconds in replies]


def _shadow_count(server, version: int, status: str) -> float:
    return server.metrics.registry.get_sample_value(
        "model_server_shadow_requests_total", {"model": NAME, "version": str(version), "status": status}) or 0.0


def _wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.timeout(180)
def test_a_shadowed_request_answers_as_without_and_both_answers_are_logged_with_its_ids(shadowed):
    server, routing, log_path, examples = shadowed
    _shadow(server, routing, None)
    alone = _answers(server, examples[:20], "alone")
    _shadow(server, routing, "canary")
    shadowed_answers = _answers(server, examples[:20], "both")
    assert [answer[:3] for answer in shadowed_answers] == [answer[:3] for answer in alone]
    assert {answer[:1] + answer[2:3] for answer in alone} == {(200, str(STABLE))}
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME))
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples[:2]))
        _, call = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict.with_call(
            request, metadata=[("x-request-id", "grpc")], timeout=30)
        assert dict(call.trailing_metadata())["x-model-version"] == str(STABLE)
    _wait_until(lambda: _shadow_count(server, CANARY, "ok") >= 21)

    def logged() -> dict[str, dict[str, object]]:
        roles: dict[str, dict[str, object]] = {}
        for call in read_calls(log_path):
            if call.request_ids and call.request_ids[0].startswith(("both-", "grpc")):
                roles.setdefault(call.request_ids[0], {})[call.role] = call
        return roles

    # Sampled requests have both answers (the shadow's written a moment later), the others neither.
    _wait_until(lambda: all(len(calls) == 2 for calls in logged().values()) and "grpc-0" in logged())
    roles = logged()
    assert 3 <= len(roles) <= 19, "the 0.5 sample rate logged all or none of 21 requests"
    for request_id, calls in roles.items():
        serving, shadow = calls["serving"], calls["shadow"]
        assert serving.request_ids == shadow.request_ids
        assert (serving.version, shadow.version) == (STABLE, CANARY)
        assert shadow.entry.predict_log.response.model_spec.version.value == CANARY
        assert shadow.entry.predict_log.request.model_spec.version_label == "canary"
        assert shadow.arm == serving.arm == "stable" and shadow.latency_seconds > 0
        # Two copies of one model: the shadow's answer is the caller's.
        assert shadow.entry.predict_log.response.outputs[OUTPUT_KEY] == \
            serving.entry.predict_log.response.outputs[OUTPUT_KEY]
    # What the quality and skew checks read holds the answers callers got, once each.
    served_ids = [ids[0] for _, ids in read_records(log_path) if ids and ids[0].startswith(("both-", "grpc"))]
    assert sorted(served_ids) == sorted(roles)
    score = server.metrics.registry.get_sample_value("model_server_shadow_score_count",
                                                     {"model": NAME, "version": str(CANARY)})
    assert score >= 22  # one per row: the gRPC call had two


@pytest.mark.timeout(180)
def test_a_shadow_version_that_fails_changes_nothing_the_caller_sees_and_is_counted(shadowed):
    server, routing, _, examples = shadowed
    _shadow(server, routing, None)
    alone = _answers(server, examples[:10], "alone")
    errors_before = _shadow_count(server, BROKEN, "error")
    _shadow(server, routing, str(BROKEN))  # by version number
    with_broken = _answers(server, examples[:10], "broken")
    assert [answer[:3] for answer in with_broken] == [answer[:3] for answer in alone]
    _wait_until(lambda: _shadow_count(server, BROKEN, "error") >= errors_before + 10)
    assert _shadow_count(server, BROKEN, "ok") == 0


@pytest.mark.timeout(180)
def test_a_slow_shadow_version_does_not_slow_the_caller_and_what_it_cannot_take_is_dropped(
        tmp_path, model_base, examples):
    server = _start(tmp_path, model_base, shadow_queue_size=2)
    try:
        _slow_shadow(server, str(tmp_path / "routing.json"), examples)
    finally:
        server.stop()


def _slow_shadow(server: ModelServer, routing: str, examples: list[bytes]) -> None:
    _shadow(server, routing, None)
    _answers(server, examples[:5], "warm")
    alone = _answers(server, examples, "alone")
    dropped_before = _shadow_count(server, SLOW, "dropped")
    _shadow(server, routing, "slow")
    started = time.perf_counter()
    with_slow = _answers(server, examples, "slow")
    took = time.perf_counter() - started
    assert [answer[:3] for answer in with_slow] == [answer[:3] for answer in alone]
    # 40 calls in turn while each shadow call takes 1 s: a caller that waited for its shadow would
    # take 40 s; here the median call is within noise of the unshadowed one.
    median_alone = statistics.median(answer[3] for answer in alone)
    median_slow = statistics.median(answer[3] for answer in with_slow)
    assert median_slow < median_alone + 0.05, (median_alone, median_slow)
    assert max(answer[3] for answer in with_slow) < SLOW_SECONDS and took < 10
    # The queue (2 calls) is full most of the time: the rest are dropped, and counted.
    assert _shadow_count(server, SLOW, "dropped") - dropped_before >= 30
    _wait_until(lambda: server.shadow.pending() == 0, seconds=10)
    assert _shadow_count(server, SLOW, "ok") >= 1
