"""`taxi-pipeline compile --target kubeflow` writes a Kubeflow v2 spec with every component."""
import json

import pytest

from pipeline.cli.main import main
from pipeline.config import load_config
from pipeline.pipeline import create_pipeline
from pipeline.prepare import prepare

CLUSTER = ["data_root=gs://taxi-bucket/data", "output_root=gs://taxi-bucket/out", "beam_profile=dataflow",
           "gcp_project=taxi-project", "gcp_region=europe-west4", "beam_temp_location=gs://taxi-bucket/tmp",
           "kubeflow_image=registry.example/taxi:1.2", "train_steps=777"]


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    args = ["compile", "--target", "kubeflow", "--output", str(path)]
    for setting in CLUSTER:
        args += ["--set", setting]
    assert main(args) == 0
    return json.loads(path.read_text())["pipelineSpec"]


def test_every_component_is_a_task(spec):
    cluster = load_config(None, CLUSTER)
    components = {c.id for c in create_pipeline(cluster, prepare(cluster), kubeflow=True).components}
    tasks = set(spec["root"]["dag"]["tasks"])
    resolvers = {c for c in components if c.endswith("_resolver")}
    # The compiler names a resolver's tasks after it, with suffixes of its own.
    resolver_tasks = {task for task in tasks if any(task.startswith(resolver) for resolver in resolvers)}
    assert tasks - resolver_tasks == components - resolvers
    assert {"baseline_model_resolver", "tuned_hyperparameters_resolver"} <= resolvers
    assert all(any(task.startswith(resolver) for task in resolver_tasks) for resolver in resolvers)


def test_parameters_and_image_are_in_the_spec(spec):
    trainer = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    assert json.loads(trainer["train_args"]["runtimeValue"]["constantValue"]["stringValue"]) == {"num_steps": 777}
    assert "models.model.run_fn" in json.dumps(trainer["run_fn"])
    executor = spec["deploymentSpec"]["executors"]["Transform_executor"]["container"]
    assert executor["image"] == "registry.example/taxi:1.2"
    assert "--runner=DataflowRunner" in executor["args"] and "--project=taxi-project" in executor["args"]
    example_gen = spec["root"]["dag"]["tasks"]["CsvExampleGen"]["inputs"]["parameters"]
    assert "gs://taxi-bucket/data" in json.dumps(example_gen["input_base"])
    pusher = spec["root"]["dag"]["tasks"]["Pusher"]["inputs"]["parameters"]
    assert "gs://taxi-bucket/out/serving/taxi-tips" in json.dumps(pusher["push_destination"])
