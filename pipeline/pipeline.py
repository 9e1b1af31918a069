"""create_pipeline(config, inputs): the taxi-tip TFX pipeline, the same for every runner.

Wiring only: what the definition needs to know about files comes in `inputs`, made by
`pipeline.prepare.prepare(config)`; nothing here reads the file system.
"""
from __future__ import annotations

# Imported from their modules, not `tfx.v1`: that one also loads the Google Cloud
# extensions, 7 s of start-up that a local run never uses.
from tfx.components import (
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
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, range_config_pb2, trainer_pb2

from models import model as model_code
from models import tuning
from pipeline import artifacts, metadata, resolvers, tfx_fixes
from pipeline.config import PipelineConfig, beam_pipeline_args
from pipeline.data_validation import statistics_io
from pipeline.data_validation.data_gate import DataGate
from pipeline.data_validation.data_report_gen import DataReportGen
from pipeline.data_validation.drift_skew_check import DriftSkewCheck
from pipeline.data_validation.inferred_schema_gen import InferredSchemaGen
from pipeline.data_validation.span_statistics_gen import SpanStatisticsGen
from pipeline.evaluation import atomic_pusher, eval_config
from pipeline.evaluation.evaluator import Evaluator
from pipeline.evaluation.servability_check import ServabilityCheck
from pipeline.ingest import fast_csv_example_gen
from pipeline.ingest.csv_check import CsvCheck
from pipeline.prepare import ONE_SPAN_PATTERN, PreparedInputs


def _example_gen(config: PipelineConfig, inputs: PreparedInputs) -> FileBasedExampleGen:
    range_config = None
    if inputs.example_gen_pattern == ONE_SPAN_PATTERN and config.spans != "latest":
        range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
            start_span_number=int(config.spans), end_span_number=int(config.spans)))
    # CsvExampleGen's graph and spans with an executor that converts the CSV with Arrow
    # (pipeline/ingest/fast_csv_example_gen.py), typed by the curated schema: the same examples in half the CPU.
    return FileBasedExampleGen(
        input_base=inputs.example_gen_input_base,
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="single_split", pattern=inputs.example_gen_pattern)]),
        # 2:1 train/eval split by hashing each row, stable across runs.
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=artifacts.TRAIN_SPLIT, hash_buckets=2),
            example_gen_pb2.SplitConfig.Split(name=artifacts.EVAL_SPLIT, hash_buckets=1)])),
        range_config=range_config,
        custom_config=fast_csv_example_gen.schema_config(statistics_io.load_schema(inputs.schema_file)),
        custom_executor_spec=executor_spec.BeamExecutorSpec(fast_csv_example_gen.Executor),
    ).with_id(artifacts.EXAMPLE_GEN)  # the name runs, tests and benchmarks know it by


def create_pipeline(config: PipelineConfig, inputs: PreparedInputs, kubeflow: bool = False) -> tfx_pipeline.Pipeline:
    """The pipeline for any runner; `kubeflow` swaps in what the Kubeflow v2 compiler accepts."""
    tfx_fixes.apply(server_store=not kubeflow and metadata.is_server(config.metadata_path))
    policy = {"on_schema_anomaly": config.on_schema_anomaly, "on_drift": config.on_drift,
              "on_skew": config.on_skew, "on_time": config.on_time}

    # Names the file, line and column of a broken CSV before ExampleGen trips over it.
    csv_check = CsvCheck(data_root=config.data_root, spans=str(config.spans), schema_path=inputs.schema_file,
                         data_fingerprint=inputs.data_version)
    # Reads the CSV spans into tf.Examples, split into train and eval.
    example_gen = _example_gen(config, inputs)
    example_gen.add_upstream_node(csv_check)
    # Per-feature statistics, for validation, skew and the data report.
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"],
                                   stats_options=statistics_io.stats_options())
    # The curated schema from schema/, not one inferred from whatever data arrived.
    schema_gen = ImportSchemaGen(schema_file=inputs.schema_file)
    # A schema inferred from this run's data, only to show how it differs from the curated one.
    inferred_schema_gen = InferredSchemaGen(statistics=statistics_gen.outputs["statistics"])
    # Compares the statistics with the schema and records anomalies.
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # The newest span's statistics on their own, kept in ML Metadata for the next run's drift check.
    span_statistics_gen = SpanStatisticsGen(
        data_root=config.data_root, spans=str(config.spans), schema_path=inputs.schema_file,
        data_fingerprint=inputs.data_version)
    span_statistics_gen.add_upstream_node(csv_check)
    # The previous span's statistics, from ML Metadata.
    previous_span = resolvers.previous_span_resolver(span_statistics_gen.outputs["span_statistics"], kubeflow)
    # Drift against the previous span, skew against serving data, per the schema's comparators;
    # and the span rules: time validity (data start, clock, previous span, derived columns), repeated rows.
    drift_check = DriftSkewCheck(
        span_statistics=span_statistics_gen.outputs["span_statistics"],
        training_statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        previous_statistics=previous_span.outputs["statistics"],
        serving_data=config.serving_data,
        serving_data_fingerprint=inputs.serving_data_version,
        time_tolerance_hours=config.time_tolerance_hours, min_time_agreement=config.min_time_agreement,
        max_duplicate_rows=config.max_duplicate_rows)
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
        preprocessing_fn=config.preprocessing_fn,
        # Statistics of the transformed data double Transform's time and nothing reads them.
        disable_statistics=True,
        # Its per-span analyzer cache is for runs that read it back (an `analyzer_cache`
        # input); none here does, so writing it is Beam stages for nothing.
        disable_analyzer_cache=True,
        force_tf_compat_v1=False,
        custom_config={"models_fingerprint": inputs.code_version})
    transform.add_upstream_node(data_gate)
    if config.tune:
        # KerasTuner search (models/tuning.py); its best hyperparameters feed Trainer.
        hyperparameter_source = Tuner(
            tuner_fn=config.tuner_fn,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=trainer_pb2.TrainArgs(num_steps=config.tuner_steps),
            eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
            custom_config={"models_fingerprint": inputs.code_version, tuning.MAX_TRIALS_KEY: config.tuner_trials})
        hyperparameters = hyperparameter_source.outputs["best_hyperparameters"]
    else:
        # The newest tuned hyperparameters in ML Metadata, so a run without tuning trains
        # as the last tuning decided; none yet: Trainer uses the code's defaults.
        hyperparameter_source = resolvers.tuned_hyperparameters_resolver(kubeflow)
        hyperparameters = hyperparameter_source.outputs[resolvers.HYPERPARAMETERS_KEY]
    # Trains and exports the Keras model (models/model.py).
    trainer = Trainer(
        run_fn=config.run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_args=trainer_pb2.TrainArgs(num_steps=config.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
        custom_config={"models_fingerprint": inputs.code_version,
                       model_code.HYPERPARAMETERS_KEY: config.hyperparameters})
    # The model of the newest push before the candidate (what serves): the baseline it has to beat.
    baseline_resolver = resolvers.baseline_resolver(trainer.outputs["model"], kubeflow)
    # TFMA: blesses the candidate only if it clears the thresholds against the baseline. Its
    # executor is TFX's, with intervals computed only for the metrics it writes
    # (pipeline/evaluation/evaluator.py).
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=eval_config.eval_config(config))
    # Loads the candidate in our model server and replays evaluation examples over REST and
    # gRPC (InfraValidator needs Docker); its blessing carries the model with warmup requests.
    servability_check = ServabilityCheck(
        model=trainer.outputs["model"], examples=example_gen.outputs["examples"], model_name=config.pipeline_name)
    # Copies a model blessed by both checks to <serving_dir>/<version>/: the one from the
    # servability blessing, which holds the warmup requests. The blessings are passed
    # explicitly so runners that ignore tfx.dsl.Cond (Airflow) still gate on them. Its executor
    # copies under a hidden name and renames, so a polling server never finds half a version
    # and ML Metadata records every version that serves (pipeline/evaluation/atomic_pusher.py).
    pusher = Pusher(
        infra_blessing=servability_check.outputs["blessing"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.serving_dir)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(atomic_pusher.Executor))

    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[csv_check, example_gen, statistics_gen, schema_gen, inferred_schema_gen, example_validator,
                    span_statistics_gen, previous_span, drift_check, data_report, data_gate, transform,
                    hyperparameter_source, trainer, baseline_resolver, evaluator, servability_check, pusher],
        enable_cache=config.enable_cache,
        # Kubeflow brings its own ML Metadata service; otherwise a SQLite file or metadata_store's server.
        metadata_connection_config=None if kubeflow else metadata.connection_config(config.metadata_path),
        beam_pipeline_args=beam_pipeline_args(config))
