"""Beam profiles: each builds its runner arguments, and a missing setting is named."""
import pytest

from pipeline.config import load_config
from pipeline.runners.beam_profiles import beam_pipeline_args, runs_on_direct_runner


def test_local_profiles():
    assert beam_pipeline_args("in_memory") == ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    assert "--direct_num_workers=2" in beam_pipeline_args("multi_processing", workers=2)


def test_cluster_profiles():
    flink = beam_pipeline_args("flink", 4, job_endpoint="flink:8099")
    assert flink[:2] == ["--runner=FlinkRunner", "--job_endpoint=flink:8099"] and "--parallelism=4" in flink
    assert beam_pipeline_args("spark", job_endpoint="spark:8099")[0] == "--runner=SparkRunner"
    dataflow = beam_pipeline_args("dataflow", 10, gcp_project="p", gcp_region="r", temp_location="gs://b/tmp")
    assert dataflow == ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/tmp",
                        "--max_num_workers=10"]


@pytest.mark.parametrize("settings, message", [
    (["beam_profile=flink"], "needs beam_job_endpoint"),
    (["beam_profile=dataflow", "gcp_project=p"], "needs gcp_region, beam_temp_location"),
    (["beam_profile=dataflow", "gcp_project=p", "gcp_region=r", "beam_temp_location=/tmp"], "must be a gs:// path"),
    (["beam_profile=warp"], "not one of in_memory, multi_processing, flink, spark, dataflow"),
])
def test_config_rejects_incomplete_profiles(settings, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, settings)


def test_only_the_local_profiles_run_on_the_direct_runner():
    assert runs_on_direct_runner(beam_pipeline_args("in_memory"))
    assert runs_on_direct_runner(beam_pipeline_args("multi_processing", workers=2))
    assert runs_on_direct_runner([])
    assert not runs_on_direct_runner(beam_pipeline_args("spark", job_endpoint="spark:8099"))
    assert not runs_on_direct_runner(["--runner=PortableRunner", "--job_endpoint=127.0.0.1:8099"])
