"""PipelineConfig: every setting of a pipeline run in one typed place.

Values come from the defaults below, then a TOML file (`--config`), then `--set key=value`
options on the command line, later ones winning.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import pathlib
import re
import tomllib
from typing import Any, Union

from pipeline.ingest.spans import parse_window
from pipeline.runners import beam_profiles

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _project_image() -> str:
    """`<name>:<version>` of this project, the tag images/pipeline/Dockerfile is built with (images/README.md).

    Read from setup.py beside the packages (a checkout or an editable install, as in the images), else from
    the installed package's metadata; no heavy import either way.
    """
    setup_py = REPO_ROOT / "setup.py"
    if setup_py.is_file():
        text = setup_py.read_text()
        name, version = (re.search(rf'\b{key}\s*=\s*"([^"]+)"', text) for key in ("name", "version"))
        if name and version:
            return f"{name.group(1)}:{version.group(1)}"
    try:
        return f"taxi-tip-pipeline:{importlib.metadata.version('taxi-tip-pipeline')}"
    except importlib.metadata.PackageNotFoundError:
        return "taxi-tip-pipeline:latest"


@dataclasses.dataclass
class PipelineConfig:
    # Lower case, digits and dashes: the one form Airflow, Kubeflow and MLMD all accept.
    pipeline_name: str = "taxi-tips"
    # Span folders span-<N>/ with CSV files, as in data/taxi/.
    data_root: str = str(REPO_ROOT / "data" / "taxi")
    schema_path: str = str(REPO_ROOT / "schema" / "schema.pbtxt")
    # Where runs write artifacts, the MLMD SQLite store and pushed models.
    output_root: str = str(REPO_ROOT / "out")
    # ML Metadata on a database server instead of <output_root>/metadata.db:
    # postgresql://USER@HOST[:PORT]/DATABASE or mysql://USER@HOST[:PORT]/DATABASE. The password
    # is never part of it: the environment gives it, TAXI_METADATA_PASSWORD or a file named by
    # TAXI_METADATA_PASSWORD_FILE. Every command (run, runs, lineage, rollback, monitor, ...) uses it.
    metadata_store: str = ""
    # Which spans ExampleGen reads: "all" (every span folder as one dataset), "latest"
    # (the highest span number), "window:N" (the N highest-numbered spans), or a span number.
    spans: Union[str, int] = "all"
    train_steps: int = 1000
    eval_steps: int = 150
    # Passed to models.model.Hyperparameters; unknown names are an error. They win over tuned ones.
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The data gate's policy per kind of finding, "stop" (the run ends before Transform)
    # or "warn" (listed in the log and the data report): anomalies against the schema,
    # drift or volume change against the previous span, skew against serving_data, time
    # validity of the newest span (pipeline/data_validation/span_rules.py).
    on_schema_anomaly: str = "stop"
    on_drift: str = "stop"
    on_skew: str = "stop"
    on_time: str = "stop"
    # Span rules beside the schema's thresholds (the data's start is trip_start_timestamp's
    # int_domain min there): no trip may start later than the run's time plus this...
    time_tolerance_hours: float = 24.0
    # ...trip_start_hour/day/month must agree with trip_start_timestamp (UTC) on at least this share of rows...
    min_time_agreement: float = 0.99
    # ...and at most this share of rows may repeat an earlier row (policy on_schema_anomaly).
    max_duplicate_rows: float = 0.01
    # Serving data for the skew check: a CSV of requests (file or folder), or the model
    # server's request-log file pattern. Empty: skew is not measured.
    serving_data: str = ""
    # Run TFX's Tuner (models/tuning.py) before Trainer. Off: Trainer uses the newest tuned
    # hyperparameters in ML Metadata, or the code's defaults when nothing was ever tuned.
    tune: bool = False
    tuner_trials: int = 4
    tuner_steps: int = 100
    # The model code TFX calls, as dotted paths: Transform's preprocessing_fn, Trainer's
    # run_fn and Tuner's tuner_fn. Another model module (or a test's) plugs in here.
    preprocessing_fn: str = "models.preprocessing.preprocessing_fn"
    run_fn: str = "models.model.run_fn"
    tuner_fn: str = "models.tuning.tuner_fn"
    # Blessing: the candidate's overall AUC must reach this...
    min_auc: float = 0.7
    # ...and may not fall more than this below the AUC of the model serving (the newest push).
    max_auc_drop: float = 0.0
    # ...and on every slice (hour, payment type, company, payment type x hour) with at least
    # min_slice_examples evaluation examples of each class (big tip and not), AUC must reach
    # min_slice_auc. AUC ranks positives against negatives: with fewer of either it is noise.
    min_slice_auc: float = 0.55
    min_slice_examples: int = 50
    # Beam runner profile and its settings, see pipeline/runners/beam_profiles.py.
    beam_profile: str = "in_memory"
    beam_workers: int = 0
    beam_job_endpoint: str = ""
    gcp_project: str = ""
    gcp_region: str = ""
    beam_temp_location: str = ""
    # Container image with this project installed, for `compile --target kubeflow`: by default the
    # tag images/pipeline/Dockerfile is built with; push it to a registry the cluster pulls from and
    # name it there (registry.example/team/taxi-tip-pipeline:0.1.0).
    kubeflow_image: str = _project_image()
    enable_cache: bool = True
    # Airflow schedule of the DAG (cron or preset); empty for manual runs only. Each run
    # picks up new spans; with nothing new, it is served from the cache.
    airflow_schedule: str = "@daily"

    # Live quality after the push (`taxi-pipeline monitor`, pipeline/monitoring/). The model
    # server's request log (its --request_log_file; empty: <output_root>/request-log/requests.tfrecord)...
    request_log: str = ""
    # ...joined by request id with the outcome files dropped here (empty: <output_root>/outcomes;
    # format in pipeline/monitoring/OUTCOMES.md)...
    outcomes_root: str = ""
    # ...over the requests of the last monitor_window_hours.
    monitor_window_hours: float = 24.0
    # A served version with fewer joined outcomes than this gets no verdict: too few to tell decay from noise.
    monitor_min_outcomes: int = 200
    # Each pass measures the window's traffic against the served version's training statistics by
    # the schema's skew comparators (report and taxi_serving_feature_drift); off skips that TFDV pass.
    monitor_serving_drift: bool = True
    # Triggers of a new run. Live AUC of a served version on a gated slice (min_slice_examples of
    # each class) below this floor...
    live_min_slice_auc: float = 0.55
    # ...or its overall live AUC more than this below the AUC Evaluator measured for it...
    live_max_auc_drop: float = 0.05
    # ...or the window's traffic drifting from the version's training data past the schema's
    # skew thresholds (skew_comparator; measured when monitor_serving_drift is on)...
    trigger_on_serving_drift: bool = True
    # ...or at least this many labelled rows captured since the last run (0: never on volume alone).
    trigger_min_new_rows: int = 0
    # No new trigger within this many hours of the last one (a run and its push take a while to show).
    trigger_cooldown_hours: float = 6.0
    # Write the window's labelled traffic as the next span of data_root (span-<N+1>/), for the next run.
    capture_spans: bool = True
    # Airflow schedule of the monitoring DAG (<pipeline_name>-monitor), which triggers the training DAG.
    monitor_schedule: str = "@hourly"

    # Canary releases (`taxi-pipeline release`, pipeline/release/). The model server's REST
    # address, the models.config it polls (labels stable and canary) and its routing file;
    # empty: what `make serve-canary` starts (http://127.0.0.1:8501,
    # <output_root>/serving/models.config and <output_root>/serving/routing.json).
    release_server: str = ""
    release_model_config: str = ""
    release_routing_file: str = ""
    # Canary traffic share (%) per step; each waits for release_min_requests per arm, at most
    # release_step_minutes, and shadows the canary on stable's requests below 100%.
    release_steps: str = "5,25,50,100"
    release_step_minutes: float = 30.0
    release_min_requests: int = 300
    release_shadow: bool = True
    # A step aborts when the canary is worse than stable by more than one of these, and the test
    # rejects chance at release_alpha: error rate (absolute), p99 latency (ratio), score
    # distribution (population stability index), agreement with stable (share of rows deciding
    # alike; a floor), live AUC (drop, on requests whose outcomes arrived, monitor_min_outcomes per arm).
    release_max_error_increase: float = 0.01
    release_max_p99_ratio: float = 1.5
    release_max_score_shift: float = 0.2
    release_min_agreement: float = 0.9
    release_max_live_auc_drop: float = 0.02
    release_alpha: float = 0.01

    # Joined as strings, not pathlib: pathlib turns gs://bucket into gs:/bucket.
    @property
    def pipeline_root(self) -> str:
        return f"{self.output_root.rstrip('/')}/pipeline"

    @property
    def metadata_path(self) -> str:
        """The ML Metadata store: metadata_store, or the SQLite file under output_root."""
        return self.metadata_store or f"{self.output_root.rstrip('/')}/metadata.db"

    @property
    def serving_dir(self) -> str:
        return f"{self.output_root.rstrip('/')}/serving/{self.pipeline_name}"

    @property
    def request_log_path(self) -> str:
        return self.request_log or f"{self.output_root.rstrip('/')}/request-log/requests.tfrecord"

    @property
    def outcomes_dir(self) -> str:
        return self.outcomes_root or f"{self.output_root.rstrip('/')}/outcomes"

    @property
    def monitoring_dir(self) -> str:
        return f"{self.output_root.rstrip('/')}/monitoring"

    def validate(self) -> "PipelineConfig":
        if isinstance(self.spans, str) and self.spans not in ("all", "latest") and not parse_window(self.spans):
            if not self.spans.isdigit():
                raise ValueError(f"spans must be 'all', 'latest', 'window:N' or a span number, not {self.spans!r}")
            self.spans = int(self.spans)
        for name in ("on_schema_anomaly", "on_drift", "on_skew", "on_time"):
            if getattr(self, name) not in ("stop", "warn"):
                raise ValueError(f"{name} must be 'stop' or 'warn', not {getattr(self, name)!r}")
        shares = (self.min_time_agreement, self.max_duplicate_rows)
        if self.time_tolerance_hours < 0 or not all(0 <= share <= 1 for share in shares):
            raise ValueError("time_tolerance_hours must be 0 or more, min_time_agreement and max_duplicate_rows "
                             "shares between 0 and 1")
        if self.monitor_window_hours <= 0 or self.trigger_cooldown_hours < 0 or self.monitor_min_outcomes < 1:
            raise ValueError("monitor_window_hours must be positive, trigger_cooldown_hours 0 or more and "
                             "monitor_min_outcomes at least 1")
        if self.train_steps < 1 or self.eval_steps < 1:
            raise ValueError("train_steps and eval_steps must be at least 1")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", self.pipeline_name):
            raise ValueError(f"pipeline_name {self.pipeline_name!r}: use lower-case letters, digits and dashes")
        beam_pipeline_args(self)  # raises on an unknown profile or a missing setting
        if self.metadata_store:
            from pipeline import metadata  # ML Metadata's protos: only when a server store is set
            metadata.connection_config(self.metadata_store)  # raises on a malformed URL or a password in it
        if is_local(self.data_root) and not pathlib.Path(self.data_root).is_dir():
            raise ValueError(f"data_root {self.data_root} is not a directory; "
                             "point it at a folder of span-<N>/ folders")
        if is_local(self.schema_path) and not pathlib.Path(self.schema_path).is_file():
            raise ValueError(f"schema_path {self.schema_path} does not exist")
        return self


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config: PipelineConfig) -> str:
    """The config as a TOML file that load_config reads back to the same settings."""
    return "".join(f"{field.name} = {_toml_value(getattr(config, field.name))}\n"
                   for field in dataclasses.fields(config))


def is_local(path: str) -> bool:
    """False for remote paths (gs://, s3://, hdfs://) that only the cluster can check."""
    return "://" not in path


def beam_pipeline_args(config: PipelineConfig) -> list[str]:
    return beam_profiles.beam_pipeline_args(config.beam_profile, config.beam_workers, config.beam_job_endpoint,
                                   config.gcp_project, config.gcp_region, config.beam_temp_location)


def _coerce(name: str, text: str) -> Any:
    """Parse a --set value by the type of the field's default."""
    field = next((f for f in dataclasses.fields(PipelineConfig) if f.name == name), None)
    if field is None:
        known = ", ".join(f.name for f in dataclasses.fields(PipelineConfig))
        raise ValueError(f"--set {name}: no such setting. Known settings: {known}")
    default = getattr(PipelineConfig(), name)
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"--set {name}: expected true or false, got {text!r}")
        return text.lower() == "true"
    if isinstance(default, dict):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"--set {name}: expected a JSON object, got {text!r} ({error})") from None
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return type(default)(text)
        except ValueError:
            raise ValueError(f"--set {name}: expected a {type(default).__name__}, got {text!r}") from None
    return text


def load_config(path: str | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    values: dict[str, Any] = {}
    if path:
        try:
            values.update(tomllib.loads(pathlib.Path(path).read_text()))
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not valid TOML: {error}") from None
    for item in overrides or []:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        values[name.strip()] = _coerce(name.strip(), text.strip())
    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{path or '--set'}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
    return PipelineConfig(**values).validate()
