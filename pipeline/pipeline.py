"""create_pipeline(config): the taxi-tip TFX pipeline, the same for every runner."""
from __future__ import annotations

import glob
import hashlib
import pathlib

# Imported from their modules, not `tfx.v1`: that one also loads the Google Cloud
# extensions, 7 s of start-up that a local run never uses.
from tfx.components import (
    Evaluator,
    ExampleValidator,
    Pusher,
    StatisticsGen,
    Trainer,
    Transform,
)
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.components.tuner.component import Tuner
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import metadata as tfx_metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, range_config_pb2, trainer_pb2
from tfx.types import Channel, standard_artifacts

from models import model as model_code
from models import tuning
from pipeline import evaluation, fast_csv_example_gen, span_statistics, spans
from pipeline.baseline import BaselineBeforeCandidateStrategy
from pipeline.config import PipelineConfig, beam_pipeline_args, is_local
from pipeline.csv_check import CsvCheck
from pipeline.data_gate import DataGate
from pipeline.data_report import DataReportGen
from pipeline.drift_check import DriftSkewCheck
from pipeline.fingerprint import files_fingerprint, models_fingerprint
from pipeline.inferred_schema import InferredSchemaGen
from pipeline.previous_span import PreviousSpanStatisticsStrategy
from pipeline.servability import ServabilityCheck
from pipeline.tuned_hyperparameters import NewestTunedOrNoneStrategy

SPAN_PATTERN = "span-{SPAN}/*.csv"


def _example_gen(config: PipelineConfig, schema_file: str) -> FileBasedExampleGen:
    if is_local(config.data_root):
        spans.list_spans(config.data_root)  # a clear error now beats ExampleGen's later
    input_base, range_config = config.data_root, None
    window = spans.parse_window(config.spans)
    if config.spans == "all" or window:
        # Every span folder read as one dataset (ExampleGen records it as span 0).
        pattern = "span-*/*.csv"
        if window:
            input_base, _ = spans.window_folder(
                config.data_root, window, f"{config.pipeline_root}/span_windows")
    else:
        pattern = SPAN_PATTERN
        if config.spans != "latest":
            range_config = range_config_pb2.RangeConfig(
                static_range=range_config_pb2.StaticRange(
                    start_span_number=config.spans, end_span_number=config.spans))
    # CsvExampleGen's graph and spans with an executor that converts the CSV with Arrow
    # (pipeline/fast_csv_example_gen.py), typed by the curated schema: the same examples in half the CPU.
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]),
        # 2:1 train/eval split by hashing each row, stable across runs.
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)])),
        range_config=range_config,
        custom_config=fast_csv_example_gen.schema_config(span_statistics.load_schema(schema_file)),
        custom_executor_spec=executor_spec.BeamExecutorSpec(fast_csv_example_gen.Executor),
    ).with_id("CsvExampleGen")  # the name runs, tests and benchmarks know it by


def _content_addressed_schema(config: PipelineConfig) -> str:
    """A copy of the curated schema under a path named by its hash.

    ImportSchemaGen's cache key holds the schema's path, not its text; reading it from a
    content-named copy makes an edited schema a new input that re-runs validation.
    """
    if not is_local(config.pipeline_root):
        # On a cluster the schema ships inside the pipeline image, whose tag versions it.
        return config.schema_path
    text = pathlib.Path(config.schema_path).read_bytes()
    folder = pathlib.Path(config.pipeline_root) / "curated_schema" / hashlib.sha256(text).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "schema.pbtxt"
    if not copy.exists():
        copy.write_bytes(text)
    return str(copy)


def _baseline_resolver(trainer: Trainer, kubeflow: bool) -> Resolver:
    every_model = {"model": Channel(type=standard_artifacts.Model),
                   "model_blessing": Channel(type=standard_artifacts.ModelBlessing)}
    if kubeflow:
        # Kubeflow v2 compiles only TFX's built-in strategies. The newest blessed model is
        # the baseline there; a re-run with nothing changed re-evaluates against itself.
        return Resolver(strategy_class=LatestBlessedModelStrategy, **every_model).with_id("baseline_model_resolver")
    return Resolver(strategy_class=BaselineBeforeCandidateStrategy, candidate=trainer.outputs["model"],
                    **every_model).with_id("baseline_model_resolver")


def _previous_span_resolver(span_statistics_gen, kubeflow: bool) -> Resolver:
    every_statistics = Channel(type=standard_artifacts.ExampleStatistics)
    if kubeflow:
        # Kubeflow v2 compiles only TFX's built-in strategies: the newest statistics on
        # record; DriftSkewCheck uses them only if they are of an earlier span.
        return Resolver(strategy_class=LatestArtifactStrategy,
                        statistics=every_statistics).with_id("previous_span_resolver")
    return Resolver(strategy_class=PreviousSpanStatisticsStrategy, statistics=every_statistics,
                    current=span_statistics_gen.outputs["span_statistics"]).with_id("previous_span_resolver")


def _files_read(config: PipelineConfig) -> list[str]:
    if not is_local(config.data_root):
        return [config.data_root]
    return [path for span in spans.spans_to_read(config.data_root, config.spans)
            for path in spans.span_files(config.data_root, span)]


def _serving_files(config: PipelineConfig) -> list[str]:
    if not config.serving_data or not is_local(config.serving_data):
        return [config.serving_data] if config.serving_data else []
    # A CSV file, a folder of CSVs, or a request-log file pattern.
    pattern = f"{config.serving_data}/*" if pathlib.Path(config.serving_data).is_dir() else config.serving_data
    found = glob.glob(pattern)
    if not found:
        raise ValueError(f"serving_data {config.serving_data}: no such file, folder or matching files")
    return found


def create_pipeline(config: PipelineConfig, kubeflow: bool = False) -> tfx_pipeline.Pipeline:
    """The pipeline for any runner; `kubeflow` swaps in what the Kubeflow v2 compiler accepts."""
    code_version = models_fingerprint()
    schema_file = _content_addressed_schema(config)
    data_version = files_fingerprint(_files_read(config))
    policy = {"on_schema_anomaly": config.on_schema_anomaly, "on_drift": config.on_drift,
              "on_skew": config.on_skew}

    # Names the file, line and column of a broken CSV before ExampleGen trips over it.
    csv_check = CsvCheck(data_root=config.data_root, spans=str(config.spans), schema_path=schema_file,
                         data_fingerprint=data_version)
    # Reads the CSV spans into tf.Examples, split into train and eval.
    example_gen = _example_gen(config, schema_file)
    example_gen.add_upstream_node(csv_check)
    # Per-feature statistics, for validation, skew and the data report.
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"],
                                   stats_options=span_statistics.stats_options())
    # The curated schema from schema/, not one inferred from whatever data arrived.
    schema_gen = ImportSchemaGen(schema_file=schema_file)
    # A schema inferred from this run's data, only to show how it differs from the curated one.
    inferred_schema_gen = InferredSchemaGen(statistics=statistics_gen.outputs["statistics"])
    # Compares the statistics with the schema and records anomalies.
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # The newest span's statistics on their own, kept in ML Metadata for the next run's drift check.
    span_statistics_gen = span_statistics.SpanStatisticsGen(
        data_root=config.data_root, spans=str(config.spans), schema_path=schema_file, data_fingerprint=data_version)
    span_statistics_gen.add_upstream_node(csv_check)
    # The previous span's statistics, from ML Metadata.
    previous_span = _previous_span_resolver(span_statistics_gen, kubeflow)
    # Drift against the previous span, skew against serving data, per the schema's comparators.
    drift_check = DriftSkewCheck(
        span_statistics=span_statistics_gen.outputs["span_statistics"],
        training_statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        previous_statistics=previous_span.outputs["statistics"],
        serving_data=config.serving_data,
        serving_data_fingerprint=files_fingerprint(_serving_files(config)))
    # The offline HTML report of what the checks saw; written before the gate can stop the run.
    data_report = DataReportGen(
        statistics=statistics_gen.outputs["statistics"], span_statistics=span_statistics_gen.outputs["span_statistics"],
        anomalies=example_validator.outputs["anomalies"], distances=drift_check.outputs["distances"],
        schema=schema_gen.outputs["schema"], inferred_schema=inferred_schema_gen.outputs["inferred_schema"], **policy)
    # Stops the run on findings the policy stops on: ExampleValidator alone never does.
    data_gate = DataGate(anomalies=example_validator.outputs["anomalies"], distances=drift_check.outputs["distances"],
                         report=data_report.outputs["report"], **policy)
    # Feature engineering (models/preprocessing.py), shared by training, TFMA and serving.
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="models.preprocessing.preprocessing_fn",
        # Statistics of the transformed data double Transform's time and nothing reads them.
        disable_statistics=True,
        force_tf_compat_v1=True,
        custom_config={"models_fingerprint": code_version})
    transform.add_upstream_node(data_gate)
    if config.tune:
        # KerasTuner search (models/tuning.py); its best hyperparameters feed Trainer.
        hyperparameter_source = Tuner(
            tuner_fn="models.tuning.tuner_fn",
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=trainer_pb2.TrainArgs(num_steps=config.tuner_steps),
            eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
            custom_config={"models_fingerprint": code_version, tuning.MAX_TRIALS_KEY: config.tuner_trials})
        hyperparameters = hyperparameter_source.outputs["best_hyperparameters"]
    else:
        # The newest tuned hyperparameters in ML Metadata, so a run without tuning trains
        # as the last tuning decided; none yet: Trainer uses the code's defaults.
        # Kubeflow v2 compiles only TFX's own strategies (which need one tuned artifact to exist).
        hyperparameter_source = Resolver(
            strategy_class=LatestArtifactStrategy if kubeflow else NewestTunedOrNoneStrategy,
            hyperparameters=Channel(type=standard_artifacts.HyperParameters)).with_id("tuned_hyperparameters_resolver")
        hyperparameters = hyperparameter_source.outputs["hyperparameters"]
    # Trains and exports the Keras model (models/model.py).
    trainer = Trainer(
        run_fn=config.run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_args=trainer_pb2.TrainArgs(num_steps=config.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
        custom_config={"models_fingerprint": code_version,
                       model_code.HYPERPARAMETERS_KEY: config.hyperparameters})
    # The newest blessed model older than the candidate: the baseline it has to beat.
    baseline_resolver = _baseline_resolver(trainer, kubeflow)
    # TFMA: blesses the candidate only if it clears the thresholds against the baseline.
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=evaluation.eval_config(config))
    # Loads the candidate in our model server and replays evaluation examples over REST and
    # gRPC (InfraValidator needs Docker); its blessing carries the model with warmup requests.
    servability_check = ServabilityCheck(
        model=trainer.outputs["model"], examples=example_gen.outputs["examples"], model_name=config.pipeline_name)
    # Copies a model blessed by both checks to <serving_dir>/<version>/: the one from the
    # servability blessing, which holds the warmup requests. The blessings are passed
    # explicitly so runners that ignore tfx.dsl.Cond (Airflow) still gate on them.
    pusher = Pusher(
        infra_blessing=servability_check.outputs["blessing"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.serving_dir)))

    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[csv_check, example_gen, statistics_gen, schema_gen, inferred_schema_gen, example_validator,
                    span_statistics_gen, previous_span, drift_check, data_report, data_gate, transform,
                    hyperparameter_source, trainer, baseline_resolver, evaluator, servability_check, pusher],
        enable_cache=config.enable_cache,
        # Kubeflow brings its own ML Metadata service; locally it is a SQLite file.
        metadata_connection_config=None if kubeflow else tfx_metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        beam_pipeline_args=beam_pipeline_args(config))
