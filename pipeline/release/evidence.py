"""What one release step saw of each arm: the server's counters and the request log.

Request and error counts come from the model server's Prometheus endpoint (the
`model_server_routed_requests_total{model,arm,version,status}` counter), read at the
step's start and now: failed requests never reach the request log. Scores, latencies and
the shadow's answers come from the request log (serving/server/request_log.py
`read_calls`), whose records carry the routed arm, the role (serving or shadow) and the
server-side latency. Outcomes that have arrived (pipeline/monitoring/outcomes.py) give the
live labels of logged rows by request id.
"""
from __future__ import annotations

import dataclasses
import os
import urllib.request
from collections import defaultdict

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from pipeline.monitoring.logged_predictions import prediction_column
from pipeline.monitoring.outcomes import OutcomeError, read_outcomes

ROUTED_REQUESTS = "model_server_routed_requests"  # the parser drops the counter's _total
METRICS_PATH = "/monitoring/prometheus/metrics"


class EvidenceError(RuntimeError):
    """The server's metrics or the request log cannot be read; the step decides nothing."""


def scrape(server: str, metrics_path: str = METRICS_PATH) -> list:
    """The server's metric families, as prometheus_client parses its exposition."""
    url = server.rstrip("/") + metrics_path
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
    except OSError as error:
        raise EvidenceError(f"cannot read the model server's metrics at {url}: {error}") from None
    return list(text_string_to_metric_families(text))


def routed_counts(server: str, model: str) -> dict[tuple[str, str], float]:
    """{(arm, "ok" | "error"): requests so far} from the server's counters (they only grow while it runs)."""
    counts: dict[tuple[str, str], float] = defaultdict(float)
    for family in scrape(server):
        if family.name != ROUTED_REQUESTS:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("model") == model:
                outcome = "ok" if sample.labels.get("status") == "OK" else "error"
                counts[(sample.labels.get("arm", ""), outcome)] += sample.value
    return counts


@dataclasses.dataclass
class Arm:
    requests: int = 0  # from the counters: answered and failed
    errors: int = 0
    scores: list = dataclasses.field(default_factory=list)  # one array per logged request
    latencies: list = dataclasses.field(default_factory=list)  # seconds, one per logged request
    row_scores: dict = dataclasses.field(default_factory=dict)  # {row request id: score}

    def score_array(self) -> np.ndarray:
        return np.concatenate(self.scores) if self.scores else np.zeros(0)

    def latency_array(self) -> np.ndarray:
        return np.asarray(self.latencies, dtype=float)

    def add(self, other: "Arm") -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.scores += other.scores
        self.latencies += other.latencies
        self.row_scores.update(other.row_scores)


@dataclasses.dataclass
class Evidence:
    arms: dict[str, Arm]  # "canary", "stable"
    shadow: tuple[np.ndarray, np.ndarray]  # (canary's shadow answers, stable's served answers) on the same rows


def count_delta(before: dict, after: dict, arm: str) -> tuple[int, int]:
    """(requests, errors) of `arm` between two reads of the counters."""
    ok = after.get((arm, "ok"), 0) - before.get((arm, "ok"), 0)
    errors = after.get((arm, "error"), 0) - before.get((arm, "error"), 0)
    return int(ok + errors), int(errors)


def _pairs(shadowed: dict, served: dict) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(shadowed[key], served[key]) for key in served if key in shadowed
             and len(shadowed[key]) == len(served[key])]
    return (np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0),
            np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0))


def read_evidence(log_pattern: str, model: str, since: float, step_since: float, versions: dict[str, int],
                  output_key: str | None = None) -> tuple[Evidence, Evidence]:
    """(the release's evidence, the step's): scores, latencies and shadow pairs of the requests logged at or
    after `since` (the release's start) and `step_since` (the step's), for the arms that are keys of
    `versions` ({"canary": version, "stable": version}), in one read of the log. Counts are the caller's."""
    from serving.server.request_log import log_files, read_calls

    whole, step = ({arm: Arm() for arm in versions} for _ in range(2))
    # {first row id of a request: its scores}, for the step: stable's answers and canary's shadow answers.
    served: dict[str, np.ndarray] = {}
    shadowed: dict[str, np.ndarray] = {}
    if log_files(log_pattern):
        since_second, step_second = int(since), int(step_since)  # the log keeps whole seconds
        for call in read_calls(log_pattern):
            if call.timestamp < since_second or call.entry.predict_log.request.model_spec.name != model:
                continue
            try:
                scores = prediction_column(call.entry.predict_log.response.outputs, output_key)
            except KeyError:
                continue
            in_step = call.timestamp >= step_second
            if call.role == "shadow":
                if in_step and call.version == versions.get("canary") and call.request_ids:
                    shadowed[call.request_ids[0]] = scores
                continue
            if call.arm not in versions or call.version != versions[call.arm]:
                continue
            for arms in (whole, step) if in_step else (whole,):
                arm = arms[call.arm]
                arm.scores.append(scores)
                arm.latencies.append(call.latency_seconds)
                arm.row_scores.update(zip(call.request_ids, scores.tolist()))
            if in_step and call.arm == "stable" and call.request_ids:
                served[call.request_ids[0]] = scores
    return Evidence(whole, (np.zeros(0), np.zeros(0))), Evidence(step, _pairs(shadowed, served))


def labelled(outcomes_dir: str, *arms: Arm) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each arm, (labels, scores) of its logged rows whose outcome has arrived and carries a label
    (one read of the outcome feed for all)."""
    empty = [(np.zeros(0, dtype=int), np.zeros(0)) for _ in arms]
    if not os.path.isdir(outcomes_dir):
        return empty
    try:
        outcomes = read_outcomes(outcomes_dir)
    except OutcomeError as error:
        if "has no .csv" in str(error):  # nothing has arrived yet
            return empty
        raise
    result = []
    for arm in arms:
        labels, scores = [], []
        for row_id, score in arm.row_scores.items():
            outcome = outcomes.by_id.get(row_id)
            value = None if outcome is None else outcomes.label(outcome)
            if value is not None:
                labels.append(value)
                scores.append(score)
        result.append((np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)))
    return result
