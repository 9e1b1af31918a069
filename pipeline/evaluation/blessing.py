"""Why Evaluator blessed a candidate or not, in words: metric, slice, value, interval and threshold.

TFMA's ValidationResult lists failed thresholds in its own terms (a shortfall metric, the
upper end of a change's interval); this module turns them, and on success the closest
margins, into the lines the CLI prints and the tests read.

The rule Evaluator applied (see eval_config.py): overall AUC and the AUC of every gated
slice are judged on their value, as fixed standards; the change against the baseline is
judged on its 95% interval, and blocks only when the whole interval lies below
-max_auc_drop. When the interval straddles that line the comparison is inconclusive: the
finding says so, so a point gain that noise could have made is not read as evidence.
"""
from __future__ import annotations

import dataclasses

import tensorflow_model_analysis as tfma

from pipeline.config import PipelineConfig
from pipeline.evaluation import auc_change_bound, intervals, slice_floor

CHANGE = "AUC (change vs baseline)"


@dataclasses.dataclass
class Finding:
    metric: str
    slice: str
    value: float  # with its interval when Evaluator computed one (intervals.Estimate)
    threshold: str  # e.g. ">= 0.7 (min_auc)"; the number after ">=" is the bound
    passed: bool
    judged: float | None = None  # what was compared with the bound, when not `value` (a change's upper end)
    note: str = ""

    def __str__(self) -> str:
        verdict = "meets" if self.passed else "FAILS"
        value = intervals.text(self.value, signed=self.metric == CHANGE)
        return f"{self.metric} on {self.slice} = {value} {verdict} {self.threshold}{self.note}"

    @property
    def margin(self) -> float:
        """How far above its bound the judged value is (negative: below)."""
        judged = self.value if self.judged is None else self.judged
        return judged - float(self.threshold.split(">=")[1].split()[0])


@dataclasses.dataclass
class Decision:
    blessed: bool
    findings: list[Finding]  # the failures when not blessed, the closest margins when blessed

    @property
    def deciding(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def slice_name(slice_key) -> str:
    """'payment_type=Cash' style name of a serialized TFMA slice key; 'overall' for the empty key."""
    parts = []
    for part in slice_key.single_slice_keys:
        kind = part.WhichOneof("kind")
        value = getattr(part, kind) if kind else ""
        parts.append(f"{part.column}={value.decode() if isinstance(value, bytes) else value}")
    return ", ".join(parts) or "overall"


def gated_slices(table: dict, config: PipelineConfig) -> dict[str, float]:
    """{slice: AUC} of the slices the floor applies to: enough examples of each class."""
    gated = {}
    for name, row in table.items():
        count, mean_label, auc = (row.get((key, False)) for key in ("example_count", "mean_label", "auc"))
        if name == "overall" or None in (auc, count, mean_label):
            continue
        if not slice_floor.is_gated(count, mean_label, config.min_slice_examples):
            continue
        gated[name] = auc
    return gated


def change_finding(name: str, row: dict, judged: float | None, config: PipelineConfig, passed: bool) -> Finding:
    """The change against the baseline: its value and interval, judged on the interval's upper end."""
    change = row.get(("auc", True), float("nan"))
    if judged is None:  # what Evaluator judged; evaluations from before intervals judged the point value
        judged = row.get((auc_change_bound.NAME, True), change)
    limit = -config.max_auc_drop or 0.0  # `or 0.0`: with no drop allowed, -0.0 would print as "-0.0"
    bounds = intervals.interval_of(change)
    threshold = (f"{'upper end ' if bounds else ''}>= {limit} (max_auc_drop {config.max_auc_drop}"
                 f"{', judged on the 95% interval' if bounds else ''})")
    note = ""
    if passed and bounds and bounds[0] < limit:
        note = f"; inconclusive: the interval also holds drops below {limit}, but does not show one"
    return Finding(CHANGE, name, change, threshold, passed, judged=judged, note=note)


def decide(evaluation_uri: str, table: dict, config: PipelineConfig) -> Decision:
    """The blessing Evaluator wrote under `evaluation_uri`, explained against `config`'s thresholds."""
    validation = tfma.load_validation_result(evaluation_uri)
    floor = (f">= {config.min_slice_auc} (min_slice_auc, on slices with >= {config.min_slice_examples} "
             "examples of each class)")
    if not validation.validation_ok:
        findings = []
        for per_slice in validation.metric_validations_per_slice:
            name = slice_name(per_slice.slice_key)
            row = table.get(name, {})
            for failure in per_slice.failures:
                key, value = failure.metric_key, failure.metric_value.double_value.value
                if key.name == slice_floor.NAME:
                    count = row.get(("example_count", False), 0)
                    findings.append(Finding("AUC", f"{name} ({count:.0f} examples)",
                                            row.get(("auc", False), config.min_slice_auc - value), floor, False))
                elif key.is_diff:  # the change: auc_change_upper_bound, or "auc" in evaluations before intervals
                    findings.append(change_finding(name, row, value, config, False))
                else:
                    shown = row.get(("auc", False), value) if key.name == "auc" else value
                    findings.append(Finding(_display(key.name), name, shown, f">= {config.min_auc} (min_auc)", False))
        # The failure furthest below its threshold first: it is what decided.
        findings.sort(key=lambda f: f.margin)
        if not findings:  # TFMA failed without a per-slice failure, e.g. a missing baseline metric
            findings.append(Finding("validation", "overall", float("nan"), str(validation).strip()[:200], False))
        return Decision(False, findings)
    overall = table.get("overall", {})
    findings = []
    if ("auc", False) in overall:
        findings.append(Finding("AUC", "overall", overall[("auc", False)], f">= {config.min_auc} (min_auc)", True))
    if ("auc", True) in overall:
        findings.append(change_finding("overall", overall, None, config, True))
    gated = gated_slices(table, config)
    if gated:
        lowest = min(gated, key=gated.get)
        count = table[lowest].get(("example_count", False), 0)
        findings.append(Finding("AUC", f"{lowest} ({count:.0f} examples; lowest of {len(gated)} gated slices)",
                                gated[lowest], floor, True))
    # The finding with the smallest margin decided it: listed first.
    findings.sort(key=lambda f: f.margin)
    return Decision(True, findings)


def _display(metric_name: str) -> str:
    return "AUC" if metric_name == "auc" else metric_name
