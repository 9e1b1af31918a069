"""Request ids through the real server, over REST and gRPC: sent or made, echoed, and kept in the
request log with each row, for the live-quality monitor."""
from __future__ import annotations

import base64
import re
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.clients import GrpcClient, RestClient, TrafficSplitClient
from serving.request_ids import HEADER, Predictions
from serving.server.model_server import ModelServer
from serving.server.model_store import ModelStore
from serving.server.request_log import RequestLog, examples_of, logged_examples, read_records

NAME = "tips"
TYPES = {"fare": "float"}
GENERATED = re.compile(r"[0-9a-f]{32}")


def _value(examples):
    fare = tf.io.parse_example(examples, {"fare": tf.io.FixedLenFeature([1], tf.float32, [0.0])})["fare"]
    return fare * 0.5 + 0.25


class _TinyModel(tf.Module):
    """0.5 * fare + 0.25 for each tf.Example, behind predict, classify and regress signatures."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def predict(self, examples):
        return {"tip_probability": _value(examples)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def classify(self, inputs):
        tip = _value(inputs)
        return {"scores": tf.concat([1 - tip, tip], axis=1),
                "classes": tf.tile(tf.constant([["0", "1"]]), [tf.shape(inputs)[0], 1])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def regress(self, inputs):
        return {"outputs": _value(inputs)}


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny") / NAME
    module = _TinyModel()
    tf.saved_model.save(module, str(base / "1"), signatures={
        "serving_default": module.predict, "classification": module.classify, "regression": module.regress})
    return str(base)


class _Served:
    """A server with a request log and the label `stable` on version 1; `records()` stops it (writing
    what is queued) and reads its log."""

    def __init__(self, model_base: str, log_path: str):
        self.log_path = log_path
        self.server = ModelServer({NAME: ModelStore(NAME, model_base, poll_seconds=0, labels={"stable": 1})},
                                  request_log=RequestLog(log_path)).start()
        self.rest = f"http://127.0.0.1:{self.server.rest_port}"
        self.grpc = f"127.0.0.1:{self.server.grpc_port}"
        self.started = int(time.time())
        self.stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.server.stop()

    def records(self) -> list:
        self.stop()
        return list(read_records(self.log_path))


@pytest.fixture
def served(model_base, tmp_path):
    served = _Served(model_base, str(tmp_path / "logs" / "requests.tfrecord"))
    yield served
    served.stop()


def _example(fare: float) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "fare": tf.train.Feature(float_list=tf.train.FloatList(value=[fare]))})).SerializeToString()


def _expected(fares: list[float]) -> list[float]:
    return [0.5 * fare + 0.25 for fare in fares]


def _rest_predict(served: _Served, fares: list[float], header: str | None = None, where: str = "") -> requests.Response:
    instances = [{"b64": base64.b64encode(_example(fare)).decode()} for fare in fares]
    return requests.post(f"{served.rest}/v1/models/{NAME}{where}:predict", json={"instances": instances},
                         headers={HEADER: header} if header is not None else {}, timeout=10)


def _grpc_predict(served: _Served, fares: list[float], header: str | None = None,
                  **spec) -> tuple[list[float], str | None]:
    """(the answers, the x-request-id of the trailing metadata)."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME, **spec))
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([_example(fare) for fare in fares], tf.string))
    with grpc.insecure_channel(served.grpc) as channel:
        reply, call = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict.with_call(
            request, timeout=10, metadata=((HEADER, header),) if header is not None else None)
    return tf.make_ndarray(reply.outputs["tip_probability"]).reshape(-1).tolist(), _trailing_id(call)


def _trailing_id(call) -> str | None:
    return dict(call.trailing_metadata() or ()).get(HEADER)


def _fares(entry) -> list[float]:
    return [example.features.feature["fare"].float_list.value[0] for example in examples_of(entry)]


def _logged_answers(entry) -> list[float]:
    return tf.make_ndarray(entry.predict_log.response.outputs["tip_probability"]).reshape(-1).tolist()


def test_rest_predict_by_label_echoes_the_id_and_logs_it_with_the_label_and_time(served):
    reply = _rest_predict(served, [2.0], "order-17", where="/labels/stable")
    assert reply.status_code == 200, reply.text
    assert reply.headers[HEADER] == "order-17"
    assert reply.json()["predictions"] == [pytest.approx(_expected([2.0]))]
    [(entry, ids)] = served.records()
    assert ids == ["order-17"]
    metadata = entry.log_metadata
    assert (metadata.model_spec.name, metadata.model_spec.signature_name, metadata.model_spec.version.value) == \
        (NAME, "serving_default", 1)
    assert served.started <= metadata.timestamp_secs <= time.time()
    request_spec = entry.predict_log.request.model_spec
    assert request_spec.version_label == "stable" and not request_spec.HasField("version")
    assert entry.predict_log.response.model_spec.version.value == 1
    assert _fares(entry) == [2.0] and _logged_answers(entry) == pytest.approx(_expected([2.0]))


def test_grpc_predict_by_label_echoes_the_id_and_logs_it_with_the_label_and_time(served):
    answers, echoed = _grpc_predict(served, [3.0], "order-18", version_label="stable")
    assert answers == pytest.approx(_expected([3.0])) and echoed == "order-18"
    [(entry, ids)] = served.records()
    assert ids == ["order-18"]
    assert entry.log_metadata.model_spec.version.value == 1
    assert served.started <= entry.log_metadata.timestamp_secs <= time.time()
    assert entry.predict_log.request.model_spec.version_label == "stable"
    assert entry.predict_log.response.model_spec.version.value == 1
    assert _fares(entry) == [3.0] and _logged_answers(entry) == pytest.approx(_expected([3.0]))


def test_without_an_id_the_server_makes_one_returns_it_and_logs_it(served):
    rest = _rest_predict(served, [1.0], where="/versions/1")
    assert rest.status_code == 200, rest.text
    _, grpc_id = _grpc_predict(served, [1.0])
    empty = _rest_predict(served, [1.0], header="")
    rest_id, empty_id = rest.headers[HEADER], empty.headers[HEADER]
    assert all(GENERATED.fullmatch(i) for i in (rest_id, grpc_id, empty_id))
    assert len({rest_id, grpc_id, empty_id}) == 3
    records = served.records()
    assert [ids for _, ids in records] == [[rest_id], [grpc_id], [empty_id]]
    # Addressed by version or the latest: the request's spec has the version that served it.
    assert all(entry.predict_log.request.model_spec.version.value == 1 for entry, _ in records)
    assert not any(entry.predict_log.request.model_spec.version_label for entry, _ in records)


def test_one_id_for_a_batch_numbers_its_rows(served):
    fares = [1.0, 2.0, 3.0]
    reply = _rest_predict(served, fares, "batch-a")
    assert reply.status_code == 200 and reply.headers[HEADER] == "batch-a"
    answers, echoed = _grpc_predict(served, fares, "batch-b")
    assert echoed == "batch-b" and answers == pytest.approx(_expected(fares))
    records = served.records()
    assert [ids for _, ids in records] == [["batch-a-0", "batch-a-1", "batch-a-2"],
                                           ["batch-b-0", "batch-b-1", "batch-b-2"]]
    assert all(_fares(entry) == fares for entry, _ in records)


def test_clients_send_ids_per_row_and_get_each_rows_id_back(served):
    rows = [{"fare": "1.0"}, {"fare": "5.0"}, {"fare": "9.0"}]
    rest, grpc_client = RestClient(served.rest, NAME, TYPES), GrpcClient(served.grpc, NAME, TYPES)
    split = TrafficSplitClient({"stable": RestClient(served.rest, NAME, TYPES, version_label="stable")},
                               {"stable": 1.0})
    try:
        by_rest = rest.predict_with_ids(rows, ["trip-1", "trip-5", "trip-9"])
        by_grpc = grpc_client.predict_with_ids(rows, ("g-1", "g-5", "g-9"))
        one = grpc_client.predict_with_ids(rows, "g")
        made = rest.predict_with_ids(rows)
        plain = grpc_client.predict(rows, request_ids=["p-1", "p-5", "p-9"])
        label, split_answer = split.predict_with_ids(rows[:1], request_ids="s")
    finally:
        rest.close()
        grpc_client.close()
        split.close()
    assert isinstance(by_rest, Predictions)
    for answer in (by_rest, by_grpc, one, made):
        assert answer.values.tolist() == pytest.approx(_expected([1.0, 5.0, 9.0]))
    assert plain.tolist() == pytest.approx(_expected([1.0, 5.0, 9.0]))
    assert by_rest.request_ids == ["trip-1", "trip-5", "trip-9"] and by_grpc.request_ids == ["g-1", "g-5", "g-9"]
    assert one.request_ids == ["g-0", "g-1", "g-2"]
    made_id = made.request_ids[0][:-2]
    assert GENERATED.fullmatch(made_id) and made.request_ids == [f"{made_id}-{row}" for row in range(3)]
    assert label == "stable" and split_answer.request_ids == ["s"]
    records = served.records()
    # What the clients returned is what the log keeps, each id beside its row's example and answer.
    assert [ids for _, ids in records] == [by_rest.request_ids, by_grpc.request_ids, one.request_ids,
                                           made.request_ids, ["p-1", "p-5", "p-9"], ["s"]]
    entry, ids = records[0]
    assert list(zip(ids, _fares(entry))) == [("trip-1", 1.0), ("trip-5", 5.0), ("trip-9", 9.0)]
    assert _logged_answers(entry) == pytest.approx(by_rest.values.tolist())
    assert records[-1][0].predict_log.request.model_spec.version_label == "stable"


@pytest.mark.parametrize("header, message", [
    ("order 17", "'order 17' is not a valid request id"),
    ("a,b", "x-request-id header holds 2 ids for 3 rows"),
    ("a,,c", "'' is not a valid request id"),
], ids=["space", "wrong count", "empty id"])
def test_a_bad_id_is_refused_and_nothing_is_logged(served, header, message):
    reply = _rest_predict(served, [1.0, 2.0, 3.0], header)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error.startswith("x-request-id header") and message in error and "printable ASCII" in error
    with pytest.raises(grpc.RpcError) as failure:
        _grpc_predict(served, [1.0, 2.0, 3.0], header)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in failure.value.details()
    classify = requests.post(f"{served.rest}/v1/models/{NAME}:classify", headers={HEADER: header}, timeout=10,
                             json={"signature_name": "classification", "examples": [{"fare": 1.0}] * 3})
    assert classify.status_code == 400 and message in classify.json()["error"]
    client = RestClient(served.rest, NAME, TYPES)
    try:
        with pytest.raises(ValueError, match=re.escape(message)):  # refused before it is sent
            client.predict([{"fare": "1.0"}] * 3, request_ids=header)
    finally:
        client.close()
    assert served.records() == []


def test_an_error_answer_carries_the_id_when_it_is_known(served):
    reply = requests.post(f"{served.rest}/v1/models/{NAME}:predict", data=b'{"instances": [1.0]}',
                          headers={HEADER: "broken-1"}, timeout=10)
    assert reply.status_code == 400 and reply.headers[HEADER] == "broken-1"
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=NAME))
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([b"not an example"]))
    with grpc.insecure_channel(served.grpc) as channel, pytest.raises(grpc.RpcError) as failure:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=10, metadata=((HEADER, "broken-2"),))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailing_id(failure.value) == "broken-2"
    assert served.records() == []


def test_classify_and_regress_are_logged_with_their_ids(served):
    classify = requests.post(f"{served.rest}/v1/models/{NAME}/labels/stable:classify", headers={HEADER: "c"},
                             json={"signature_name": "classification", "examples": [{"fare": 1.0}, {"fare": 3.0}]},
                             timeout=10)
    assert classify.status_code == 200, classify.text
    assert classify.headers[HEADER] == "c" and len(classify.json()["results"]) == 2
    request = regression_pb2.RegressionRequest(model_spec=model_pb2.ModelSpec(name=NAME, signature_name="regression"))
    for fare in (2.0, 4.0):
        request.input.example_list.examples.add().ParseFromString(_example(fare))
    classification = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name=NAME, signature_name="classification"))
    classification.input.example_list.examples.add().ParseFromString(_example(6.0))
    with grpc.insecure_channel(served.grpc) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        regressed, call = stub.Regress.with_call(request, timeout=10, metadata=((HEADER, "r-2,r-4"),))
        _, made = stub.Classify.with_call(classification, timeout=10)
    assert [r.value for r in regressed.result.regressions] == pytest.approx(_expected([2.0, 4.0]))
    assert _trailing_id(call) == "r-2,r-4" and GENERATED.fullmatch(_trailing_id(made))
    (by_rest, rest_ids), (by_grpc, grpc_ids), (made_entry, made_ids) = served.records()
    assert rest_ids == ["c-0", "c-1"] and grpc_ids == ["r-2", "r-4"] and made_ids == [_trailing_id(made)]
    assert by_rest.WhichOneof("log_type") == "classify_log" and by_grpc.WhichOneof("log_type") == "regress_log"
    assert by_rest.classify_log.request.model_spec.version_label == "stable"
    assert by_rest.classify_log.response.model_spec.version.value == 1
    assert by_grpc.regress_log.request.model_spec.version.value == 1
    assert [entry.log_metadata.model_spec.signature_name for entry in (by_rest, by_grpc, made_entry)] == \
        ["classification", "regression", "classification"]
    assert _fares(by_rest) == [1.0, 3.0] and _fares(by_grpc) == [2.0, 4.0] and _fares(made_entry) == [6.0]


def test_the_skew_checks_reader_takes_a_log_with_ids(served):
    from pipeline.data_validation.serving_data import serving_statistics
    from pipeline.data_validation.statistics_io import load_schema
    from tests.conftest import SCHEMA
    _rest_predict(served, [1.0, 2.0], "s")
    _grpc_predict(served, [3.0])
    assert [ids for _, ids in served.records()][0] == ["s-0", "s-1"]
    assert [e.features.feature["fare"].float_list.value[0] for e in logged_examples(served.log_path)] == \
        [1.0, 2.0, 3.0]
    assert serving_statistics(served.log_path, load_schema(str(SCHEMA))).num_examples == 3


def test_client_command_shows_each_rows_id(served, tmp_path, capsys):
    from serving.clients.cli import main
    csv = tmp_path / "rows.csv"
    csv.write_text("fare,payment_type\n2.0,Cash\n4.0,Cash\n")
    assert main([str(csv), "--rest", served.rest, "--model", NAME, "--show-ids", "--show", "fare"]) == 0
    lines = capsys.readouterr().out.splitlines()
    found = [re.fullmatch(r"row (\d): prediction (\S+) \(id ([0-9a-f]{32})-(\d), fare (\S+)\)", line) for line in lines]
    assert all(found) and len(found) == 2, lines
    assert [(m.group(1), m.group(4), m.group(5)) for m in found] == [("1", "0", "2.0"), ("2", "1", "4.0")]
    assert [float(m.group(2)) for m in found] == pytest.approx(_expected([2.0, 4.0]), abs=1e-4)
    [(_, ids)] = served.records()
    assert ids == [f"{m.group(3)}-{m.group(4)}" for m in found]
    with pytest.raises(SystemExit):
        main([str(csv), "--rest", served.rest, "--api", "classify", "--show-ids"])
    assert "--show-ids goes with --api predict" in capsys.readouterr().err
