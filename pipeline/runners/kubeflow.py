"""Compile the pipeline to a Kubeflow Pipelines v2 (Vertex AI Pipelines) spec."""
from __future__ import annotations

import pathlib

from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import KubeflowV2DagRunner, KubeflowV2DagRunnerConfig

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.prepare import prepare


def compile_kubeflow(config: PipelineConfig, output_path: str) -> str:
    """Write the pipeline spec JSON; every component runs in `config.kubeflow_image`.

    data_root, output_root and the Beam profile should name places the cluster reaches
    (gs:// paths, beam_profile=dataflow); the image must contain this project.
    """
    path = pathlib.Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    runner = KubeflowV2DagRunner(
        config=KubeflowV2DagRunnerConfig(default_image=config.kubeflow_image),
        output_dir=str(path.parent), output_filename=path.name)
    runner.run(create_pipeline(config, prepare(config), kubeflow=True), write_out=True)
    return str(path)
