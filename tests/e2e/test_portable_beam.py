"""The cluster Beam profiles (flink, spark) submit the data stages to a portable job service.

Beam's Flink and Spark job servers are jars fetched from Maven Central, which this machine
cannot reach; Beam's own Python job service speaks the same Job API. Started here on
loopback, it takes what the `flink` and `spark` profiles submit (`--runner=FlinkRunner` /
`SparkRunner`, `--job_endpoint`, `--environment_type=LOOPBACK`): job submission, artifact
staging and the portable worker protocol are exercised, and the outputs must equal the
DirectRunner's. What only a real cluster shows (Flink's or Spark's scheduling, remote
workers, a shared filesystem) is not.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline import artifacts
from pipeline.config import load_config
from pipeline.pipeline import create_pipeline
from pipeline.prepare import prepare
from tests.conftest import SMALL_RUN_SETTINGS, shipped_lines, write_span
from tests.services.loopback_services import stop_process

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SPLITS = (artifacts.TRAIN_SPLIT, artifacts.EVAL_SPLIT)


@pytest.fixture(scope="module")
def job_service(tmp_path_factory):
    """Beam's Python job service on a loopback port it picks itself (written to a file)."""
    folder = tmp_path_factory.mktemp("job_service")
    port_file, log_path = folder / "port", folder / "job_service.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", "0",
             "--port_file", str(port_file)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (port_file.exists() and port_file.read_text().strip()) and process.poll() is None:
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.5)
        assert process.poll() is None, log_path.read_text()[-2000:]
        yield f"localhost:{port_file.read_text().strip()}", log_path
    finally:
        stop_process(process)


def _data_stages(root: pathlib.Path, *settings: str) -> pathlib.Path:
    """Run the pipeline up to Transform (ExampleGen, the statistics and checks, the gate, Transform) in `root`."""
    write_span(root / "data", 1, shipped_lines(4)[:1501])
    config = load_config(None, [f"data_root={root / 'data'}", f"output_root={root / 'out'}", *SMALL_RUN_SETTINGS,
                                *settings])
    LocalDagRunner().run(create_pipeline(config, prepare(config)),
                         run_options=tfx_pipeline.RunOptions(to_nodes=["Transform"]))
    return root / "out" / "pipeline"


@pytest.fixture(scope="module")
def direct(tmp_path_factory) -> pathlib.Path:
    return _data_stages(tmp_path_factory.mktemp("direct"))


def _one(pattern: str, root: pathlib.Path) -> pathlib.Path:
    [found] = root.glob(pattern)
    return found


def _examples(root: pathlib.Path, split: str) -> list[bytes]:
    records = []
    for path in sorted(_one("CsvExampleGen/examples/*", root).glob(f"Split-{split}/*.gz")):
        records += list(tf.data.TFRecordDataset(str(path), compression_type="GZIP").as_numpy_iterator())
    return sorted(records)


def _statistics(root: pathlib.Path, split: str) -> dict[str, tuple]:
    """{feature: (counts and labels, compared exactly; means and deviations, compared to rounding)}."""
    [stats] = statistics_pb2.DatasetFeatureStatisticsList.FromString(
        _one(f"StatisticsGen/statistics/*/Split-{split}/FeatureStats.pb", root).read_bytes()).datasets
    summary = {"": ((stats.num_examples,), ())}
    for feature in stats.features:
        kind = feature.WhichOneof("stats")
        if kind == "num_stats":
            s = feature.num_stats
            summary[feature.path.step[0]] = ((s.common_stats.num_non_missing, s.min, s.max), (s.mean, s.std_dev))
        elif kind == "string_stats":
            s = feature.string_stats
            summary[feature.path.step[0]] = (
                (s.common_stats.num_non_missing, s.unique, tuple((v.value, v.frequency) for v in s.top_values)), ())
    return summary


def _transformed(root: pathlib.Path, examples: list[bytes]) -> dict[str, np.ndarray]:
    output = tft.TFTransformOutput(str(_one("Transform/transform_graph/*", root)))
    raw = tf.io.parse_example(examples, output.raw_feature_spec())
    return {name: value.numpy() for name, value in output.transform_raw_features(raw).items()}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("profile", ["flink", "spark"])
def test_profile_submits_the_data_stages_to_the_job_service_with_the_direct_runners_outputs(
        profile, job_service, direct, tmp_path):
    endpoint, log_path = job_service
    jobs_before = log_path.read_text().count("Running job")
    portable = _data_stages(tmp_path, f"beam_profile={profile}", f"beam_job_endpoint={endpoint}")
    # TFX's Beam components went through the service: ExampleGen, StatisticsGen and Transform, a job each.
    assert log_path.read_text().count("Running job") - jobs_before == 3, log_path.read_text()[-3000:]

    for split in SPLITS:
        examples = _examples(portable, split)
        assert examples and examples == _examples(direct, split), f"{split}: different examples"
        ours, theirs = _statistics(portable, split), _statistics(direct, split)
        assert ours.keys() == theirs.keys()
        for name, (exact, rounded) in ours.items():
            assert exact == theirs[name][0] and rounded == pytest.approx(theirs[name][1], rel=1e-9), name
    for vocabulary in ("company_vocab", "payment_type_vocab"):
        assert (_one(f"Transform/transform_graph/*/transform_fn/assets/{vocabulary}", portable).read_bytes()
                == _one(f"Transform/transform_graph/*/transform_fn/assets/{vocabulary}", direct).read_bytes())
    rows = _examples(direct, artifacts.EVAL_SPLIT)[:64]
    ours, theirs = _transformed(portable, rows), _transformed(direct, rows)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-6, err_msg=name)
