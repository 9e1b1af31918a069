"""PipelineConfig: every setting of a pipeline run in one typed place.

Values come from the defaults below, then a TOML file (`--config`), then `--set key=value`
options on the command line, later ones winning.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import tomllib
from typing import Any, Union

from pipeline.spans import parse_window

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class PipelineConfig:
    pipeline_name: str = "taxi_tips"
    # Span folders span-<N>/ with CSV files, as in data/taxi/.
    data_root: str = str(REPO_ROOT / "data" / "taxi")
    schema_path: str = str(REPO_ROOT / "schema" / "schema.pbtxt")
    # Where runs write artifacts, the MLMD SQLite store and pushed models.
    output_root: str = str(REPO_ROOT / "out")
    # Which spans ExampleGen reads: "all" (every span folder as one dataset), "latest"
    # (the highest span number), "window:N" (the N highest-numbered spans), or a span number.
    spans: Union[str, int] = "all"
    train_steps: int = 1000
    eval_steps: int = 150
    # Passed to models.model.Hyperparameters; unknown names are an error.
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Blessing: the candidate's overall AUC must reach this...
    min_auc: float = 0.7
    # ...and may not fall more than this below the latest blessed model's AUC.
    max_auc_drop: float = 0.0
    # Beam runner profile, see pipeline/beam.py.
    beam_profile: str = "in_memory"
    beam_workers: int = 0
    enable_cache: bool = True

    @property
    def pipeline_root(self) -> str:
        return str(pathlib.Path(self.output_root) / "pipeline")

    @property
    def metadata_path(self) -> str:
        return str(pathlib.Path(self.output_root) / "metadata.db")

    @property
    def serving_dir(self) -> str:
        return str(pathlib.Path(self.output_root) / "serving" / self.pipeline_name)

    def validate(self) -> "PipelineConfig":
        if isinstance(self.spans, str) and self.spans not in ("all", "latest") and not parse_window(self.spans):
            if not self.spans.isdigit():
                raise ValueError(f"spans must be 'all', 'latest', 'window:N' or a span number, not {self.spans!r}")
            self.spans = int(self.spans)
        if self.train_steps < 1 or self.eval_steps < 1:
            raise ValueError("train_steps and eval_steps must be at least 1")
        if not pathlib.Path(self.data_root).is_dir():
            raise ValueError(f"data_root {self.data_root} is not a directory; point it at a folder of span-<N>/ folders")
        if not pathlib.Path(self.schema_path).is_file():
            raise ValueError(f"schema_path {self.schema_path} does not exist")
        return self


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
