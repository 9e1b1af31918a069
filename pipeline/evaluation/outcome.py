"""What a finished run decided: metrics against thresholds, the blessing, the push."""
from __future__ import annotations

import dataclasses
import os

import tensorflow_model_analysis as tfma

from pipeline import artifacts, metadata
from pipeline.config import PipelineConfig
from pipeline.evaluation import blessing, eval_config, intervals, servability


@dataclasses.dataclass
class Outcome:
    blessed: bool | None
    pushed_version: str | None
    text: str


def _metric_value(item) -> float | None:
    """The value with its 95% interval when Evaluator computed one."""
    if not item.value.HasField("double_value"):
        return None
    bounds = None
    if item.HasField("confidence_interval"):
        lower, upper = item.confidence_interval.lower_bound, item.confidence_interval.upper_bound
        if lower.HasField("double_value") and upper.HasField("double_value"):
            bounds = (lower.double_value.value, upper.double_value.value)
    return intervals.Estimate(item.value.double_value.value, bounds)


def metrics_table(evaluation_uri: str) -> dict[str, dict[tuple[str, bool], float]]:
    """{slice: {(metric name, is_diff): candidate value, an intervals.Estimate}} from an Evaluator output."""
    table: dict[str, dict[tuple[str, bool], float]] = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        row = table.setdefault(blessing.slice_name(per_slice.slice_key), {})
        for item in per_slice.metric_keys_and_values:
            value = _metric_value(item)
            if value is None or item.key.model_name == "baseline":
                continue
            row[(item.key.name, item.key.is_diff)] = value
    return table


def _metric_lines(table: dict, config: PipelineConfig, shown: int = 5) -> list[str]:
    """Overall metrics, then the gated slices with the lowest AUC."""
    def fmt(name: str) -> str:
        row = table.get(name, {})
        parts = []
        for key, label in (("auc", "AUC"), ("precision", "precision"), ("recall", "recall"),
                           ("calibration", "calibration")):
            # Intervals on the AUC and its change, the metrics that gate.
            if (key, False) in row:
                parts.append(f"{label} {intervals.text(row[(key, False)], with_interval=key == 'auc')}")
            if key == "auc" and ("auc", True) in row:
                parts.append(f"vs baseline {intervals.text(row[('auc', True)], signed=True)}")
        if ("example_count", False) in row:
            parts.append(f"examples {row[('example_count', False)]:.0f}")
        return f"  {name:40s} " + ", ".join(parts)

    lines = [fmt("overall")]
    gated = blessing.gated_slices(table, config)
    lowest = sorted(gated, key=gated.get)[:shown]
    if lowest:
        lines.append(f"  {len(table) - 1} slices over {', '.join(eval_config.SLICE_FEATURES)}; {len(gated)} have "
                     f">= {config.min_slice_examples} examples of each class (gated, with intervals); the other "
                     f"{len(table) - 1 - len(gated)} have too few of a class to gate or to give a meaningful interval; "
                     "the lowest AUC:")
        lines += [fmt(name) for name in lowest]
    return lines


def describe(config: PipelineConfig, run_id: str) -> Outcome:
    nodes = {node.node_id: node for node in metadata.node_runs(metadata.open_store(config.metadata_path), run_id)}
    lines = [""]
    report = nodes.get(artifacts.DATA_REPORT_GEN)
    if report and report.outputs.get("report"):
        lines.append(f"Data report: {os.path.join(report.outputs['report'][0].uri, artifacts.REPORT_FILE)}")
    lines.append("Evaluation (candidate model on the eval split):")
    blessed = None
    evaluator = nodes.get(artifacts.EVALUATOR)
    if evaluator and evaluator.outputs.get("evaluation"):
        uri = evaluator.outputs["evaluation"][0].uri
        table = metrics_table(uri)
        lines += _metric_lines(table, config)
        decision = blessing.decide(uri, table, config)
        blessed = decision.blessed
        lines.append(f"Thresholds: overall {eval_config.BLESSING_METRIC} >= {config.min_auc}; not shown to be more "
                     f"than {config.max_auc_drop} below the serving model (the newest push; skipped when there is "
                     "none): blocked only when the whole 95% interval of the change lies below that; "
                     f"AUC >= {config.min_slice_auc} on every slice with >= {config.min_slice_examples} "
                     "examples of each class.")
        if blessed:
            lines.append(f"Blessing: BLESSED, every threshold is met; closest: {decision.deciding}")
            lines += [f"  {finding}" for finding in decision.findings[1:]]
        else:
            lines.append(f"Blessing: NOT BLESSED, decided by: {decision.deciding}")
            lines += [f"  also: {finding}" for finding in decision.findings[1:]]
    check = nodes.get(artifacts.SERVABILITY_CHECK)
    if check and check.outputs.get("blessing"):
        artifact = check.outputs["blessing"][0]
        report = metadata.custom_value(artifact, servability.REPORT_PROPERTY) or ""
        if metadata.custom_value(artifact, "blessed") == 1:
            lines.append(f"Servability: OK, {report}")
        else:
            lines.append("Servability: FAILED, the model does not serve:\n  " + report.replace("\n", "\n  "))
    pushed_version = None
    pusher = nodes.get(artifacts.PUSHER)
    if pusher and pusher.outputs.get("pushed_model"):
        artifact = pusher.outputs["pushed_model"][0]
        if metadata.custom_value(artifact, "pushed") == 1:
            pushed_version = metadata.custom_value(artifact, "pushed_destination")
            if pusher.state == "CACHED":
                lines.append(f"Nothing new to push: this model was already pushed as {pushed_version}")
            else:
                lines.append(f"Pushed: {pushed_version}")
        else:
            lines.append(f"Not pushed: the model was not blessed (Evaluator and servability check); "
                         f"{config.serving_dir} is unchanged.")
    return Outcome(blessed, pushed_version, "\n".join(lines))
