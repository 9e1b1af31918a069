"""When live traffic says a new pipeline run should start, and why.

The policy's settings live in PipelineConfig (live_min_slice_auc, live_max_auc_drop,
trigger_on_serving_drift, trigger_min_new_rows, trigger_cooldown_hours, monitor_min_outcomes).
A version with fewer outcomes than monitor_min_outcomes is judged on nothing but drift
and volume: its AUC would be noise. Drift is the pass's serving-drift measurement
(serving_drift.py, the same numbers as the report and taxi_serving_feature_drift). Within
the cooldown of the last trigger nothing fires, but the reasons are still reported.
"""
from __future__ import annotations

import dataclasses

from pipeline.config import PipelineConfig
from pipeline.monitoring.live_quality import SliceQuality
from pipeline.monitoring.serving_drift import ServingDrift

FIRE, QUIET, HELD = "trigger", "no trigger", "held"


@dataclasses.dataclass(frozen=True)
class Reason:
    kind: str  # "slice AUC", "AUC drop", "serving drift", "new rows"
    version: int | None
    slice: str
    value: float
    threshold: str

    def __str__(self) -> str:
        text = f"{self.kind} = {self.value:.4f} {self.threshold}"
        text += f" on {self.slice}" if self.slice else ""
        return text + (f" (version {self.version})" if self.version is not None else "")


@dataclasses.dataclass
class Decision:
    verdict: str  # FIRE, QUIET or HELD
    reasons: list[Reason]
    notes: list[str]  # what was not judged and why (too few outcomes, cooldown, a run in progress)

    @property
    def fire(self) -> bool:
        return self.verdict == FIRE

    def summary(self) -> str:
        head = {FIRE: "TRIGGER", QUIET: "no trigger", HELD: "HELD"}[self.verdict]
        lines = [f"decision: {head}"] + [f"  because {reason}" for reason in self.reasons]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


def quality_reasons(qualities: list[SliceQuality], offline_auc: dict[int, float], labelled: dict[int, int],
                    config: PipelineConfig) -> tuple[list[Reason], list[str]]:
    """Decay of each served version with enough outcomes: gated slices below the floor, and
    the overall AUC against the offline one."""
    reasons, notes = [], []
    for version in sorted({q.version for q in qualities} | set(labelled)):
        if labelled.get(version, 0) < config.monitor_min_outcomes:
            notes.append(f"version {version}: {labelled.get(version, 0)} outcomes joined, fewer than "
                         f"monitor_min_outcomes={config.monitor_min_outcomes}; its quality is not judged")
            continue
        mine = [q for q in qualities if q.version == version and q.version_label is None]
        for quality in mine:
            auc = quality.metrics.get("auc")
            if auc is None:
                continue
            if quality.slice == "overall":
                offline = offline_auc.get(version)
                if offline is not None and offline - auc > config.live_max_auc_drop:
                    reasons.append(Reason("AUC drop", version, "overall", auc,
                                          f"< offline {offline:.4f} - live_max_auc_drop {config.live_max_auc_drop}"))
            elif quality.gated(config.min_slice_examples) and auc < config.live_min_slice_auc:
                reasons.append(Reason("slice AUC", version, quality.slice, auc,
                                      f"< live_min_slice_auc {config.live_min_slice_auc}"))
    reasons.sort(key=lambda r: (r.kind != "AUC drop", r.value))
    return reasons, notes


def drift_reasons(measured: ServingDrift | None, config: PipelineConfig) -> tuple[list[Reason], list[str]]:
    """Each feature of the window's traffic past its skew threshold, when trigger_on_serving_drift is on."""
    if not config.trigger_on_serving_drift:
        return [], []
    if measured is None:
        return [], ["serving drift not judged: monitor_serving_drift is off"]
    return [Reason("serving drift", measured.version, d.feature, d.value, f"> {d.comparator} threshold {d.threshold}")
            for d in measured.over], []


def decide(reasons: list[Reason], notes: list[str], seconds_since_last_trigger: float | None,
           config: PipelineConfig) -> Decision:
    """FIRE when there is a reason and the cooldown has passed; HELD when the cooldown holds it."""
    if not reasons:
        return Decision(QUIET, [], notes)
    cooldown = config.trigger_cooldown_hours * 3600
    if seconds_since_last_trigger is not None and seconds_since_last_trigger < cooldown:
        return Decision(HELD, reasons, notes + [
            f"the last trigger was {seconds_since_last_trigger / 3600:.1f} h ago, within trigger_cooldown_hours="
            f"{config.trigger_cooldown_hours}"])
    return Decision(FIRE, reasons, notes)
