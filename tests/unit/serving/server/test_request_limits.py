"""What the server refuses cheaply, and how it matches TF Serving while doing so: TensorProtos
that declare more than they hold, URL versions, JSON nesting and parse errors, metric labels,
the reload RPC's guard, and the command's flags."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from serving.server import json_input, model_server
from serving.server.errors import ServingError
from serving.server.grpc_api import path_is_inside, peer_is_local
from serving.server.metrics import UNKNOWN_MODEL, ServerMetrics
from serving.server.model_config import ModelEntry
from serving.server.model_store import VersionPolicy
from serving.server.rest_api import GET_PATH, POST_PATH, parse_version, signature_defs_json
from serving.tensor_protos import TensorProtoError, to_ndarray


def _proto(dtype: int, dims: list[int], **content) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **content)


@pytest.mark.parametrize("proto, reason", [
    (_proto(types_pb2.DT_FLOAT, [2_000_000_000]), "would take 8000000000 bytes filled in from 0 values"),
    (_proto(types_pb2.DT_STRING, [2_000_000_000], string_val=[b"x"]), "filled in from 1 values"),
    (_proto(types_pb2.DT_INT64, [1 << 20, 1 << 20], int64_val=[1]), "filled in from 1 values"),
    (_proto(types_pb2.DT_FLOAT, [1 << 62, 1 << 62]), "more elements than int64 can count"),
    (_proto(types_pb2.DT_FLOAT, [3], tensor_content=b"1234"), "needs 12 bytes of tensor_content, but it has 4"),
    (_proto(types_pb2.DT_FLOAT, [2], float_val=[1.0, 2.0, 3.0]), "holds 2 elements, but it gives 3 values"),
    (_proto(types_pb2.DT_FLOAT, [-1]), "negative dimension"),
    (_proto(types_pb2.DT_FLOAT, [1] * 300), "300 dimensions"),
    (_proto(types_pb2.DT_FLOAT, [1] * 40, float_val=[1.0]), "ValueError"),  # numpy's 32 dimensions
    (_proto(12345, [1]), "not a TensorFlow DataType"),
    (_proto(types_pb2.DT_INVALID, [1]), "not a TensorFlow DataType"),
    (_proto(types_pb2.DT_RESOURCE, [1]), "cannot be sent"),
])
def test_tensors_that_declare_more_than_they_hold_are_refused_without_allocating(proto, reason):
    started = time.perf_counter()
    with pytest.raises(TensorProtoError, match=reason.replace("(", r"\(")):
        to_ndarray(proto)
    assert time.perf_counter() - started < 0.1


def test_tensors_within_the_limit_still_fill_in_like_tensorflow():
    np.testing.assert_array_equal(to_ndarray(_proto(types_pb2.DT_FLOAT, [2, 3], float_val=[7.0])),
                                  np.full([2, 3], 7.0, np.float32))
    np.testing.assert_array_equal(to_ndarray(_proto(types_pb2.DT_INT64, [4])), np.zeros(4, np.int64))
    assert to_ndarray(_proto(types_pb2.DT_STRING, [3], string_val=[b"a"])).tolist() == [b"a"] * 3
    # Every value given: as large as the message that carried it, whatever the limit.
    many = to_ndarray(_proto(types_pb2.DT_INT64, [1000], int64_val=list(range(1000))), max_bytes=16)
    assert many.shape == (1000,) and many[-1] == 999
    with pytest.raises(TensorProtoError):
        to_ndarray(_proto(types_pb2.DT_INT64, [1000], int64_val=[1]), max_bytes=16)


@pytest.mark.parametrize("text, version", [("7", 7), ("0007", 7), ("0" * 40 + "12", 12),
                                           ("9223372036854775807", 2 ** 63 - 1)])
def test_url_versions_are_read_like_simple_atoi(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize("text", ["9223372036854775808", "1" * 20, "9" * 5000])
def test_url_versions_beyond_int64_get_tf_servings_message(text):
    with pytest.raises(ServingError) as failure:
        parse_version(text)
    assert failure.value.http_status == 400
    assert failure.value.message == f"Failed to convert version: {text} to numeric."


def test_only_ascii_digits_are_a_version_as_in_re2():
    assert POST_PATH.fullmatch("/v1/models/m/versions/12:predict")
    assert not POST_PATH.fullmatch("/v1/models/m/versions/\u0661\u0662:predict")  # Arabic-Indic 12
    assert not GET_PATH.fullmatch("/v1/models/m/versions/\uff11")  # fullwidth 1


def test_metadata_prints_fields_at_their_defaults_as_tf_serving_does():
    definition = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    definition.inputs["x"].name = "x:0"
    definition.inputs["x"].dtype = types_pb2.DT_FLOAT
    definition.inputs["x"].tensor_shape.dim.add(size=-1)
    definition.outputs["y"].name = "y:0"
    definition.outputs["y"].dtype = types_pb2.DT_STRING
    definition.outputs["y"].tensor_shape.unknown_rank = True
    # As in TF Serving's testdata/saved_model_half_plus_two_2_versions_metadata.json.
    assert signature_defs_json({"serving_default": definition}) == {"serving_default": {
        "inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""}],
                                                              "unknown_rank": False}, "name": "x:0"}},
        "outputs": {"y": {"dtype": "DT_STRING", "tensor_shape": {"dim": [], "unknown_rank": True}, "name": "y:0"}},
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }}


@pytest.mark.parametrize("body, message", [
    (b'{"instances": [1]} {"x": 1}',
     "JSON Parse error: The document root must not be followed by other values. at offset: 19"),
    (b'{"instances": [1]}\n  x', "JSON Parse error: The document root must not be followed by other values. at "
                               "offset: 21"),
    (b'{"a": "\xc3\xa9"} x', "at offset: 12"),  # bytes (11 characters), as rapidjson counts
    (b"nope", "JSON Parse error: Invalid value. at offset: 0"),
    (b"[" * 100_000, json_input.TOO_DEEP),
])
def test_json_parse_errors_read_as_tf_servings(body, message):
    with pytest.raises(ServingError) as failure:
        json_input.parse_json_body(body)
    assert message in failure.value.message
    assert failure.value.http_status == 400


def test_json_nested_deeper_than_a_tensor_can_be_is_a_400():
    deep = json_input.parse_json_body(b'{"instances": ' + b"[" * 900 + b"1.0" + b"]" * 900 + b"}")
    with pytest.raises(ServingError) as failure:
        json_input.json_inputs(deep, {"x": tf.float32})
    assert "nested more than 32 deep" in failure.value.message
    value: list = []
    for _ in range(5000):
        value = [value]
    assert json_input.json_text(value) == "(a JSON value nested too deeply to quote)"


@pytest.mark.parametrize("peer, local", [
    ("ipv4:127.0.0.1:1", True), ("ipv4:127.255.0.9:1", True), ("ipv6:[::1]:1", True), ("ipv6:%5B::1%5D:1", True),
    ("unix:/run/s.sock", True), ("unix-abstract:s", True), ("ipv6:[::ffff:127.0.0.1]:1", True),
    ("ipv4:10.1.2.3:5555", False), ("ipv4:0.0.0.0:1", False), ("ipv6:[fe80::1]:1", False),
    ("ipv6:[::ffff:10.0.0.1]:1", False), ("ipv4:localhost:1", False), ("", False), ("dns:127.0.0.1:1", False),
])
def test_peer_is_local(peer, local):
    assert peer_is_local(peer) is local


def test_path_is_inside(tmp_path):
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    (tmp_path / "models-evil").mkdir()
    (root / "escape").symlink_to(tmp_path)
    roots = [str(root)]
    assert path_is_inside(str(root), roots) and path_is_inside(str(root / "a"), roots)
    assert path_is_inside(str(root / "new" / "1"), roots)  # need not exist yet
    assert not path_is_inside(str(tmp_path / "models-evil"), roots)  # a prefix, not a parent
    assert not path_is_inside(str(root / ".." / "models-evil"), roots)
    assert not path_is_inside(str(root / "escape" / "x"), roots)
    assert path_is_inside("gs://bucket/models/m", ["gs://bucket/models"])
    assert not path_is_inside("gs://bucket/models/../other", ["gs://bucket/models"])
    assert path_is_inside("/anything", ["/"])


def test_metric_labels_are_only_served_model_names():
    metrics = ServerMetrics(models={"m"})
    for name in ("m", "x", "y" * 500):
        with metrics.request(name, "predict", "REST") as info:
            info["status"] = "NOT_FOUND"
    text = metrics.exposition().decode()
    assert 'model_name="m"' in text and f'model_name="{UNKNOWN_MODEL}",status="NOT_FOUND"}} 2.0' in text
    assert 'model_name="x"' not in text


def test_a_request_cancelled_by_its_caller_is_counted_as_cancelled():
    metrics = ServerMetrics()

    async def cancelled():
        with metrics.request("m", "predict", "GRPC"):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    assert 'model_name="m",status="CANCELLED"' in metrics.exposition().decode()


def test_the_command_passes_the_new_flags_to_the_server(monkeypatch, tmp_path):
    made = {}

    class Stop(Exception):
        pass

    class FakeServer:
        def __init__(self, *args, **options):
            made.update(options)

        def apply_config(self, *_):
            raise Stop

    monkeypatch.setattr(model_server, "ModelServer", FakeServer)
    config = tmp_path / "conf" / "models.config"
    config.parent.mkdir()
    config.write_text('model_config_list { config { name: "m" base_path: "/srv/m" model_platform: "tensorflow" } }')
    with pytest.raises(Stop):
        model_server.main([f"--model_config_file={config}", "--rest_api_idle_timeout_seconds=5",
                           "--rest_api_body_timeout_seconds=7", "--allow_remote_reload"])
    assert (made["rest_idle_timeout"], made["rest_body_timeout"], made["allow_remote_reload"]) == (5.0, 7.0, True)
    assert made["reload_roots"] == sorted(["/srv/m", str(config.parent)])
    args = model_server._parser().parse_args(["--model_config_root=/a", "--model_config_root=/b"])
    entries = [ModelEntry("m", "/srv/m", VersionPolicy(), {})]
    assert model_server._reload_roots(args, entries) == ["/a", "/b"]
    defaults = model_server._parser().parse_args([])
    assert (defaults.rest_api_idle_timeout_seconds, defaults.allow_remote_reload) == (75.0, False)
