"""`taxi-pipeline release`: walk the `canary` version through traffic steps; promote, hold or abort.

The model config (serving/deploy/models.config as production_config --canary writes it)
names the two versions: `stable` serves, `canary` is the candidate. At each step the
routing file sends that share of the model's unaddressed requests to `canary` (sticky
per routing key; the rest to `stable`) and, below 100%, shadows `canary` on the requests
`stable` answers. The step waits until each arm has `min_requests` requests (or
`step_minutes` pass), then compares the arms (pipeline/release/analysis.py):

- a check that fails (canary worse, materially and significantly) aborts: all traffic
  back to `stable`, shadow off, the labels untouched;
- checks that pass advance to the next step; passing at 100% promotes: `stable` moves to
  the canary version through the model config (which the server re-reads), then the
  routing file sends everything to `stable`;
- too few requests by the step's deadline hold: the weight stays, and the same command
  run again resumes at that step (steps already passed are not repeated).

Every step, with the evidence of each check, is recorded in ML Metadata (`runs`,
`lineage`), and `<output_root>/monitoring/release.prom` gets the canary's weight and
whether it was aborted, for the alert rules.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.release import analysis, evidence, release_record, routing_file
from pipeline.release.release_record import ABORT, ADVANCE, HOLD, PROMOTE

PROMETHEUS_FILE = "release.prom"
DEFAULT_SERVER = "http://127.0.0.1:8501"


class ReleaseError(RuntimeError):
    """The release cannot run as asked (no canary label, a server that does not route, ...)."""


@dataclasses.dataclass
class Settings:
    server: str  # the model server's REST address, http://host:port
    model_config: str  # the models.config the server polls (labels stable and canary)
    routing_file: str  # the routing file the server polls
    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    step_minutes: float = 30.0
    poll_seconds: float = 5.0
    apply_seconds: float = 60.0  # how long the server may take to apply a routing or label change
    shadow: bool = True
    thresholds: analysis.Thresholds = dataclasses.field(default_factory=analysis.Thresholds)

    @classmethod
    def from_config(cls, config: PipelineConfig, **overrides) -> "Settings":
        # Empty settings: what `make serve-canary` starts (the files beside the serving folder).
        serving_root = f"{config.output_root.rstrip('/')}/serving"
        values = dict(server=config.release_server or DEFAULT_SERVER,
                      model_config=config.release_model_config or f"{serving_root}/models.config",
                      routing_file=config.release_routing_file or f"{serving_root}/routing.json",
                      steps=parse_steps(config.release_steps),
                      step_minutes=config.release_step_minutes, shadow=config.release_shadow,
                      thresholds=analysis.Thresholds(
                          min_requests=config.release_min_requests,
                          max_error_increase=config.release_max_error_increase,
                          max_p99_ratio=config.release_max_p99_ratio,
                          max_score_shift=config.release_max_score_shift,
                          min_agreement=config.release_min_agreement,
                          max_live_auc_drop=config.release_max_live_auc_drop,
                          min_outcomes=config.monitor_min_outcomes, alpha=config.release_alpha))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def parse_steps(text: str) -> tuple[float, ...]:
    try:
        steps = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ReleaseError(f"release steps {text!r}: give percentages separated by commas, e.g. 5,25,50,100") from None
    if not steps or steps[-1] != 100 or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise ReleaseError(f"release steps {text!r}: increasing percentages in (0, 100], ending with 100")
    return steps


@dataclasses.dataclass
class Result:
    verdict: str  # PROMOTE, ABORT or HOLD
    canary_version: int
    stable_version: int
    steps: list[release_record.ReleaseStep]


def _labels(settings: Settings, model: str) -> tuple[int, int]:
    from pipeline.governance.rollback import RollbackError, read_entry

    try:
        _, entry = read_entry(settings.model_config, model)
    except RollbackError as error:
        raise ReleaseError(str(error)) from None
    labels = dict(entry.version_labels)
    if "stable" not in labels or "canary" not in labels:
        raise ReleaseError(f"{settings.model_config}: model {model} needs the labels stable and canary "
                           f"(has {', '.join(sorted(labels)) or 'none'}); write them with "
                           "`python -m serving.deploy.production_config --canary`")
    if labels["stable"] == labels["canary"]:
        raise ReleaseError(f"{settings.model_config}: stable and canary both name version {labels['stable']}; "
                           "nothing to release")
    return labels["canary"], labels["stable"]


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.load(reply)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _wait_for(what: str, check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise ReleaseError(f"the model server did not {what} within {seconds:g} s")
        time.sleep(0.2)


def _route(settings: Settings, model: str, percent: float, shadow: bool) -> None:
    """Write the weights and wait until the server reports them (model_server_routing_weight)."""
    routing_file.set_route(settings.routing_file, model, percent, shadow="canary" if shadow else None)

    def applied() -> bool:
        try:
            families = evidence.scrape(settings.server)
        except evidence.EvidenceError:  # restarting: ask again until apply_seconds pass
            return False
        for family in families:
            if family.name == "model_server_routing_weight":
                for sample in family.samples:
                    if sample.labels.get("model") == model and sample.labels.get("arm") == "canary":
                        return abs(sample.value - percent / 100) < 1e-6
        return percent == 0  # a server that no longer lists the canary arm routes nothing to it
    _wait_for(f"apply the routing file {settings.routing_file} (is it started with --routing_config_file?)",
              applied, settings.apply_seconds)


def _promote(settings: Settings, model: str, canary: int) -> None:
    from pipeline.governance.rollback import move_label

    move_label(settings.model_config, model, "stable", canary)
    url = f"{settings.server.rstrip('/')}/v1/models/{urllib.parse.quote(model, safe='')}/labels/stable/metadata"
    _wait_for(f"move the label stable to version {canary} (does it poll {settings.model_config}?)",
              lambda: str((_get_json(url) or {}).get("model_spec", {}).get("version")) == str(canary),
              settings.apply_seconds)
    _route(settings, model, 0.0, shadow=False)  # `stable` is the canary version now


def _write_prometheus(config: PipelineConfig, canary: int, weight: float, aborted: bool,
                      checks: list[analysis.Check]) -> None:
    registry = CollectorRegistry()
    labels = ("pipeline", "canary_version")
    key = (config.pipeline_name, str(canary))
    Gauge("taxi_release_aborted", "1 when the newest release of the canary version aborted", labels,
          registry=registry).labels(*key).set(1 if aborted else 0)
    Gauge("taxi_release_step_weight", "Share of traffic (%) the canary gets at its current step", labels,
          registry=registry).labels(*key).set(weight)
    Gauge("taxi_release_last_step_timestamp_seconds", "When the release's last step was decided", labels,
          registry=registry).labels(*key).set(time.time())
    value = Gauge("taxi_release_check_value", "What the last step measured per check (difference, ratio, "
                  "distance or share; see pipeline/release/analysis.py)", (*labels, "metric"), registry=registry)
    failed = Gauge("taxi_release_check_failed", "1 when the check failed at the last step, 0 when it passed "
                   "(absent: not enough data)", (*labels, "metric"), registry=registry)
    for check in checks:
        if check.value is not None:
            value.labels(*key, check.metric).set(check.value)
        if check.verdict != analysis.TOO_FEW:
            failed.labels(*key, check.metric).set(1 if check.verdict == analysis.FAIL else 0)
    path = f"{config.monitoring_dir}/{PROMETHEUS_FILE}"
    os.makedirs(config.monitoring_dir, exist_ok=True)
    write_to_textfile(path, registry)


def _checks(step: evidence.Evidence, stable_reference: evidence.Arm, canary_so_far: evidence.Arm,
            stable_so_far: evidence.Arm, outcomes_dir: str, limits: analysis.Thresholds) -> list[analysis.Check]:
    canary = step.arms["canary"]
    return [
        analysis.error_rate(canary.errors, canary.requests, stable_reference.errors, stable_reference.requests,
                            limits),
        analysis.p99_latency(canary.latency_array(), stable_reference.latency_array(), limits),
        analysis.score_shift(canary.score_array(), stable_reference.score_array(), limits),
        analysis.agreement(step.shadow[0], step.shadow[1], limits),
        # Outcomes arrive late: live AUC is judged on every request of the release so far.
        analysis.live_auc(*evidence.labelled(outcomes_dir, canary_so_far, stable_so_far), limits),
    ]


def _stable_counts(steps: list[release_record.ReleaseStep]) -> tuple[int, int]:
    """(requests, errors) stable answered in the recorded steps, from their error-rate evidence."""
    requests = errors = 0
    for step in steps:
        for check in step.evidence:
            if check["metric"] == "error rate" and check["stable"] is not None:
                requests += int(check["samples"][1])
                errors += round(check["stable"] * int(check["samples"][1]))
    return requests, errors


REQUIRED = ("error rate", "score distribution")  # without these a step has no evidence to advance on


def _verdict(checks: list[analysis.Check], weight: float) -> tuple[str, str]:
    failed = [check for check in checks if check.verdict == analysis.FAIL]
    if failed:
        return ABORT, "; ".join(str(check) for check in failed)
    missing = [check for check in checks if check.metric in REQUIRED and check.verdict == analysis.TOO_FEW]
    if missing:
        return HOLD, "too few requests for " + ", ".join(str(check) for check in missing)
    judged = [check.metric for check in checks if check.verdict == analysis.PASS]
    return (PROMOTE if weight == 100 else ADVANCE), "passed " + ", ".join(judged)


def run_release(config: PipelineConfig, settings: Settings, say: Callable[[str], None] = print,
                clock: Callable[[], float] = time.time, again: bool = False) -> Result:
    """Walk the canary through the steps not passed yet; `again`: from the first step, even when an
    earlier release of this canary ended (its steps stay recorded)."""
    model = config.pipeline_name
    canary_version, stable_version = _labels(settings, model)
    store = metadata.open_store(config.metadata_path, metadata.READ_WRITE)
    done = [] if again else release_record.steps(store, model, canary_version)
    if done and done[-1].verdict in (PROMOTE, ABORT):
        raise ReleaseError(f"the release of version {canary_version} already ended: {release_record.describe(done[-1])}"
                           "; push a new version (or label another one canary), or give --again to start over")
    passed = {step.weight for step in done if step.verdict == ADVANCE}
    remaining = [weight for weight in settings.steps if weight not in passed]
    def percents(weights) -> str:
        return ", ".join(f"{w:g}%" for w in weights)
    say(f"release of version {canary_version} against stable {stable_version}: steps {percents(remaining)}"
        + (f" (passed before: {percents(sorted(passed))})" if passed else ""))
    versions = {"canary": canary_version, "stable": stable_version}
    release_start = done[0].recorded_at - settings.step_minutes * 60 if done else clock()
    recorded: list[release_record.ReleaseStep] = []
    for weight in remaining:
        shadow = settings.shadow and weight < 100
        _route(settings, model, weight, shadow)
        started, before = clock(), evidence.routed_counts(settings.server, model)
        say(f"  step {weight:g}%: routing applied; waiting for {settings.thresholds.min_requests} requests per arm")
        deadline = started + settings.step_minutes * 60
        while True:
            time.sleep(settings.poll_seconds)
            now_counts = evidence.routed_counts(settings.server, model)
            canary_requests, _ = evidence.count_delta(before, now_counts, "canary")
            stable_requests, _ = evidence.count_delta(before, now_counts, "stable")
            enough_stable = stable_requests >= settings.thresholds.min_requests or weight == 100
            if (canary_requests >= settings.thresholds.min_requests and enough_stable) or clock() >= deadline:
                break
        whole, step = evidence.read_evidence(config.request_log_path, model, release_start, started, versions)
        for arm in ("canary", "stable"):
            step.arms[arm].requests, step.arms[arm].errors = evidence.count_delta(before, now_counts, arm)
        # At 100% stable answers nothing: it is judged against stable's answers earlier in the release.
        reference = step.arms["stable"]
        if reference.requests < settings.thresholds.min_requests:
            reference = evidence.Arm(*_stable_counts(done + recorded), scores=whole.arms["stable"].scores,
                                     latencies=whole.arms["stable"].latencies)
        checks = _checks(step, reference, whole.arms["canary"], whole.arms["stable"], config.outcomes_dir,
                         settings.thresholds)
        verdict, reason = _verdict(checks, weight)
        for check in checks:
            say(f"    {check}")
        if verdict == ABORT:
            _route(settings, model, 0.0, shadow=False)
        elif verdict == PROMOTE:
            _promote(settings, model, canary_version)
        execution_id = release_record.record_step(
            config.metadata_path, model, canary_version=canary_version, stable_version=stable_version,
            weight=weight, verdict=verdict, reason=reason, evidence=[check.as_dict() for check in checks],
            step_started=started)
        recorded.append(release_record.ReleaseStep(execution_id, clock(), canary_version, stable_version, weight,
                                                   verdict, reason, [check.as_dict() for check in checks]))
        _write_prometheus(config, canary_version, 0.0 if verdict == ABORT else weight, verdict == ABORT,
                          checks)
        say(f"  step {weight:g}%: {verdict.upper()}: {reason}")
        if verdict != ADVANCE:
            break
    final = recorded[-1].verdict if recorded else HOLD
    if final == PROMOTE:
        say(f"promoted: version {canary_version} is stable now (was {stable_version}); all traffic goes to it")
    elif final == ABORT:
        say(f"aborted: all traffic back to stable version {stable_version}; version {canary_version} keeps its "
            "canary label but gets no traffic")
    else:
        say(f"held at {recorded[-1].weight:g}%: run the same command again to resume at this step"
            if recorded else "nothing to do")
    return Result(final, canary_version, stable_version, recorded)
