"""Beam pipeline arguments for each runner profile, built and checked in one place.

Moving Beam work to a cluster is a change of `beam_profile` (and its settings) in the
pipeline config, never of the pipeline code.
"""
from __future__ import annotations

PROFILES = ("in_memory", "multi_processing", "flink", "spark", "dataflow")
# Runner names that mean Beam's DirectRunner (the default when --runner is not given).
DIRECT_RUNNERS = (None, "", "DirectRunner", "directrunner", "direct", "BundleBasedDirectRunner")


def beam_pipeline_args(profile: str, workers: int = 0, job_endpoint: str = "",
                       gcp_project: str = "", gcp_region: str = "", temp_location: str = "") -> list[str]:
    """Arguments for TFX's Beam-based components (ExampleGen, StatisticsGen, Transform, Evaluator).

    in_memory runs Beam inside the orchestrating process: no worker start-up, fastest for
    the shipped data on a 2-core machine. multi_processing starts `workers` processes
    (0 = one per core). flink and spark submit to a portable job server at `job_endpoint`
    (host:port). dataflow needs a GCP project, region and a gs:// temp_location.
    """
    if profile == "in_memory":
        return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    if profile == "multi_processing":
        return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    if profile in ("flink", "spark"):
        if not job_endpoint:
            raise ValueError(f"beam_profile {profile} needs beam_job_endpoint (host:port of the {profile} job server)")
        runner = "FlinkRunner" if profile == "flink" else "SparkRunner"
        args = [f"--runner={runner}", f"--job_endpoint={job_endpoint}", "--environment_type=LOOPBACK"]
        return args + ([f"--parallelism={workers}"] if workers and profile == "flink" else [])
    if profile == "dataflow":
        missing = [name for name, value in (("gcp_project", gcp_project), ("gcp_region", gcp_region),
                                            ("beam_temp_location", temp_location)) if not value]
        if missing:
            raise ValueError(f"beam_profile dataflow needs {', '.join(missing)}")
        if not temp_location.startswith("gs://"):
            raise ValueError(f"beam_temp_location must be a gs:// path for Dataflow, not {temp_location!r}")
        args = ["--runner=DataflowRunner", f"--project={gcp_project}", f"--region={gcp_region}",
                f"--temp_location={temp_location}"]
        return args + ([f"--max_num_workers={workers}"] if workers else [])
    raise ValueError(f"beam_profile {profile!r} is not one of {', '.join(PROFILES)}")


def runs_on_direct_runner(beam_pipeline_args: list[str]) -> bool:
    """Whether these arguments run Beam in this process or its children (in_memory,
    multi_processing), rather than submit the work to a runner elsewhere."""
    from apache_beam.options import pipeline_options  # Beam only for the components that run it
    return pipeline_options.PipelineOptions(flags=beam_pipeline_args).get_all_options().get("runner") in DIRECT_RUNNERS
