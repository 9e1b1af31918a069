"""What a finished run decided: metrics against thresholds, the blessing, the push."""
from __future__ import annotations

import dataclasses
import os

import tensorflow_model_analysis as tfma

from pipeline import evaluation, metadata
from pipeline.config import PipelineConfig
from pipeline.data_report import REPORT_FILE


@dataclasses.dataclass
class Outcome:
    blessed: bool | None
    pushed_version: str | None
    text: str


def _slice_name(slice_key) -> str:
    """'payment_type=Cash' style name of a TFMA slice key; 'overall' for the empty key."""
    parts = []
    for part in slice_key.single_slice_keys:
        kind = part.WhichOneof("kind")
        value = getattr(part, kind) if kind else ""
        parts.append(f"{part.column}={value.decode() if isinstance(value, bytes) else value}")
    return ", ".join(parts) or "overall"


def _metric_value(value) -> float | None:
    return value.double_value.value if value.HasField("double_value") else None


def metrics_table(evaluation_uri: str) -> dict[str, dict[tuple[str, bool], float]]:
    """{slice: {(metric name, is_diff): candidate value}} from an Evaluator output."""
    table: dict[str, dict[tuple[str, bool], float]] = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        row = table.setdefault(_slice_name(per_slice.slice_key), {})
        for item in per_slice.metric_keys_and_values:
            value = _metric_value(item.value)
            if value is None or item.key.model_name == "baseline":
                continue
            row[(item.key.name, item.key.is_diff)] = value
    return table


def describe(config: PipelineConfig, run_id: str) -> Outcome:
    nodes = {node.node_id: node for node in metadata.node_runs(metadata.open_store(config.metadata_path), run_id)}
    lines = [""]
    report = nodes.get("DataReportGen")
    if report and report.outputs.get("report"):
        lines.append(f"Data report: {os.path.join(report.outputs['report'][0].uri, REPORT_FILE)}")
    lines.append("Evaluation (candidate model on the eval split):")
    blessed = None
    evaluator = nodes.get("Evaluator")
    if evaluator and evaluator.outputs.get("evaluation"):
        uri = evaluator.outputs["evaluation"][0].uri
        table = metrics_table(uri)
        for slice_name in ["overall"] + sorted(s for s in table if s != "overall"):
            row = table.get(slice_name, {})
            auc = row.get(("auc", False))
            parts = [f"AUC {auc:.4f}" if auc is not None else "AUC n/a"]
            if ("auc", True) in row:
                parts.append(f"vs baseline {row[('auc', True)]:+.4f}")
            if ("binary_accuracy", False) in row:
                parts.append(f"accuracy {row[('binary_accuracy', False)]:.4f}")
            if ("example_count", False) in row:
                parts.append(f"examples {row[('example_count', False)]:.0f}")
            if slice_name == "overall" or len(table) <= 12:
                lines.append(f"  {slice_name:32s} " + ", ".join(parts))
        if len(table) > 13:
            lines.append(f"  ({len(table) - 1} slices over {', '.join(evaluation.SLICE_FEATURES)}; all in {uri})")
        lines.append(f"Thresholds: overall {evaluation.BLESSING_METRIC} >= {config.min_auc}, and at most "
                     f"{config.max_auc_drop} below the latest blessed model (skipped when there is none).")
        validation = tfma.load_validation_result(uri)
        blessed = validation.validation_ok
        if blessed:
            lines.append("Blessing: BLESSED, every threshold is met.")
        else:
            lines.append("Blessing: NOT BLESSED:")
            for per_slice in validation.metric_validations_per_slice:
                for failure in per_slice.failures:
                    lines.append(f"  {_slice_name(per_slice.slice_key)}: {failure.metric_key.name}"
                                 f"{' (change vs baseline)' if failure.metric_key.is_diff else ''}: "
                                 f"{failure.message}")
    pushed_version = None
    pusher = nodes.get("Pusher")
    if pusher and pusher.outputs.get("pushed_model"):
        artifact = pusher.outputs["pushed_model"][0]
        if metadata.custom_value(artifact, "pushed") == 1:
            pushed_version = metadata.custom_value(artifact, "pushed_destination")
            if pusher.state == "CACHED":
                lines.append(f"Nothing new to push: this model was already pushed as {pushed_version}")
            else:
                lines.append(f"Pushed: {pushed_version}")
        else:
            lines.append(f"Not pushed: the model was not blessed; {config.serving_dir} is unchanged.")
    return Outcome(blessed, pushed_version, "\n".join(lines))
