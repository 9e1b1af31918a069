"""The whole pipeline with the real LocalDagRunner and ML Metadata, run after run.

The tests run in file order and share one pipeline home: each scenario starts from the
state the previous one left, as runs do in production.
"""
from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from pipeline import metadata
from pipeline.config import load_config
from pipeline.runners.local_runner import run_local
from serving.clients.request_encoding import read_csv_rows
from tests.conftest import REPO, SMALL_RUN_SETTINGS, shipped_lines, write_span
from tests.signature_checks import predict_both_ways

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("pipeline_home")
    lines = shipped_lines(4)
    write_span(root / "data", 1, lines[:1501])
    return root


def _config(home: pathlib.Path, *extra: str):
    return load_config(None, [f"data_root={home / 'data'}", f"output_root={home / 'out'}", "spans=latest",
                              *SMALL_RUN_SETTINGS, *extra])


def _run(home: pathlib.Path, *extra: str):
    out = io.StringIO()
    result = run_local(_config(home, *extra), out=out)
    return result, out.getvalue()


def _versions(home: pathlib.Path) -> list[str]:
    serving = home / "out" / "serving" / "taxi-tips"
    return sorted(p.name for p in serving.iterdir()) if serving.exists() else []


def _states(home: pathlib.Path, run_id: str) -> dict[str, str]:
    store = metadata.open_store(str(home / "out" / "metadata.db"))
    return {node.node_id: node.state for node in metadata.node_runs(store, run_id)}


# The worse model: a learning rate of zero leaves the network at its random start.
WORSE = 'hyperparameters={"learning_rate": 0.0}'
TYPES = F.feature_types()


def test_first_run_blesses_and_pushes(home):
    result, output = _run(home)
    assert result.succeeded, output
    assert "Blessing: BLESSED" in output
    assert _versions(home) == [pathlib.Path(result.pushed_version).name]
    assert f"Pushed: {result.pushed_version}" in output
    for component in ("CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert f"{component} done in" in output


def test_pushed_model_predicts_csv_rows_through_both_signatures(home):
    version = home / "out" / "serving" / "taxi-tips" / _versions(home)[0]
    loaded = tf.saved_model.load(str(version))
    rows = list(read_csv_rows(str(home / "data" / "span-1" / "data.csv")))[:100]
    from_examples, from_named = predict_both_ways(loaded, rows)
    np.testing.assert_allclose(from_examples, from_named, atol=1e-6)
    assert from_examples.shape == (100, 1)


def test_pushed_model_is_served_over_rest_and_grpc(home):
    import grpc
    import requests
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

    from models.signatures import OUTPUT_KEY
    from serving.clients.request_encoding import row_to_example, rows_to_named_features
    from serving.server.model_server import ModelServer
    from serving.server.model_store import ModelStore

    base = home / "out" / "serving" / "taxi-tips"
    rows = list(read_csv_rows(str(home / "data" / "span-1" / "data.csv")))[:10]
    in_process, _ = predict_both_ways(tf.saved_model.load(str(base / _versions(home)[0])), rows)
    server = ModelServer({"taxi-tips": ModelStore("taxi-tips", str(base), poll_seconds=0)}).start()
    try:
        reply = requests.post(f"http://127.0.0.1:{server.rest_port}/v1/models/taxi-tips:predict", timeout=30,
                              json={"signature_name": "serving_raw", "inputs": rows_to_named_features(rows, TYPES)})
        np.testing.assert_allclose(np.array(reply.json()["outputs"]), in_process, atol=1e-6)
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="taxi-tips"))
            request.inputs["examples"].CopyFrom(
                tf.make_tensor_proto([row_to_example(r, TYPES).SerializeToString() for r in rows]))
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs[OUTPUT_KEY]), in_process, atol=1e-6)
        assert response.model_spec.version.value == int(_versions(home)[0])
    finally:
        server.stop()


def test_worse_model_is_not_blessed_and_not_pushed(home):
    before = _versions(home)
    result, output = _run(home, WORSE)
    assert result.succeeded, output
    assert "Blessing: NOT BLESSED" in output
    assert "(change vs baseline)" in output
    assert "Not pushed" in output and result.pushed_version is None
    assert _versions(home) == before, "the earlier version must stay the newest"
    states = _states(home, result.run_id)
    assert states["Trainer"] == "COMPLETE" and states["Transform"] == "CACHED"


def test_rerun_with_nothing_changed_executes_no_component(home):
    result, output = _run(home, WORSE)
    assert result.succeeded, output
    states = _states(home, result.run_id)
    components = {node: state for node, state in states.items() if not node.endswith("_resolver")}
    assert len(components) == 15
    assert set(components.values()) == {"CACHED"}, components


@pytest.mark.timeout(300)
def test_command_line_rerun_with_nothing_changed_stops_before_importing_tensorflow(home):
    """`taxi-pipeline run` compares code, settings and data with the last finished run first
    (pipeline/runners/up_to_date.py): nothing changed, so it names that run and makes none."""
    from pipeline.monitoring import pipeline_status

    store = metadata.open_store(str(home / "out" / "metadata.db"))
    before = metadata.run_ids(store, "taxi-tips")
    settings = [f"data_root={home / 'data'}", f"output_root={home / 'out'}", "spans=latest",
                *SMALL_RUN_SETTINGS, WORSE]
    command = [sys.executable, "-X", "importtime", "-m", "pipeline.cli.main", "run"]
    process = subprocess.run(command + [arg for setting in settings for arg in ("--set", setting)], cwd=REPO,
                             capture_output=True, text=True, timeout=240)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
    assert f"Nothing changed since run {before[-1]}" in process.stdout, process.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in process.stderr.splitlines() if "|" in line}
    assert "ml_metadata" in imported and not imported & {"tensorflow", "tfx", "apache_beam"}
    assert metadata.run_ids(metadata.open_store(str(home / "out" / "metadata.db")), "taxi-tips") == before
    # For the alerts it is a run that ended now with the last run's outcome.
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.runners import up_to_date
    run_id, confirmed = up_to_date.confirmed(_config(home, WORSE))
    prom = (home / "out" / "monitoring" / pipeline_status.PROMETHEUS_FILE).read_text()
    ended = {sample.labels["outcome"]: sample.value for family in text_string_to_metric_families(prom)
             for sample in family.samples if sample.name == "taxi_pipeline_last_run_timestamp_seconds"}
    assert run_id == before[-1] and ended["not_blessed"] == pytest.approx(confirmed)


def test_span_that_breaks_the_schema_stops_before_transform(home):
    before = _versions(home)
    lines = shipped_lines(4)
    header, rows = lines[0], lines[1501:2501]
    # A payment type the schema does not know.
    write_span(home / "data", 2, [header] + [row.replace(",Cash,", ",Bitcoin,") for row in rows])
    result, output = _run(home)
    assert not result.succeeded
    assert "feature 'payment_type'" in output and "DataGate failed" in output
    assert "Bitcoin" in output
    states = _states(home, result.run_id)
    assert "Transform" not in states and "Trainer" not in states
    assert states["DataGate"] == "FAILED"
    assert _versions(home) == before
