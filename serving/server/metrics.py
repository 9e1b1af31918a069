"""Prometheus metrics of the model server, on the REST port like TF Serving's.

TF Serving's own series (`:tensorflow:serving:request_count`, `...:request_latency`) keep
their names and labels so existing dashboards work; `model_server_*` series add the model
version, which canary and A/B comparisons need. Requests for models the server does not
serve are counted under the model name `__unknown__` (TF Serving uses the name sent), so
clients cannot add series without bound.

Routing and shadow series (serving/server/routing.py, shadow.py): requests by the arm the
router chose, the predicted probabilities each version answered (the score distribution a
canary analysis compares), shadow calls by outcome, the weights in force, and fallbacks.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from typing import Container, Iterator, Mapping

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

DEFAULT_PATH = "/monitoring/prometheus/metrics"
UNKNOWN_MODEL = "__unknown__"  # the model label of requests for a model that is not served
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
SCORE_BUCKETS = tuple(round(0.05 * step, 2) for step in range(1, 21))  # 0.05, 0.1, ..., 1.0
# Shadow call outcomes (the `status` label): answered, failed, or not run because the queue was full.
SHADOW_OK, SHADOW_ERROR, SHADOW_DROPPED = "ok", "error", "dropped"


def probabilities(outputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """A predict answer's one probability per row, when it has one: its only float output, one value
    per row ([n] or [n, 1]), every value in [0, 1]. None for any other answer (several outputs, logits)."""
    floats = [value for value in outputs.values() if np.asarray(value).dtype.kind == "f"]
    if len(floats) != 1:
        return None
    value = np.asarray(floats[0])
    if value.ndim not in (1, 2) or (value.ndim == 2 and value.shape[1] != 1):
        return None
    value = value.reshape(-1)
    if not value.size or not (value.min() >= 0 and value.max() <= 1):  # a NaN fails both too
        return None
    return value


class ArrayHistogram(Collector):
    """A Prometheus histogram fed a whole answer's values at once. prometheus_client's Histogram
    takes one value per call (about 4 us each: 7 ms on the event loop for a 1,000-row answer);
    here numpy bins them in one step and the series are made when Prometheus scrapes."""

    def __init__(self, name: str, documentation: str, labelnames: list[str], buckets: tuple[float, ...],
                 registry: CollectorRegistry):
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self._series: dict[tuple[str, ...], list] = {}  # labels -> [counts per bucket and +Inf, sum]
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, labels: tuple[str, ...], values: np.ndarray) -> None:
        # A value equal to a bound belongs to that bound's bucket (le): the first bound >= it.
        counts = np.bincount(np.searchsorted(self.bounds, values, side="left"), minlength=len(self.bounds) + 1)
        total = float(np.sum(values, dtype=np.float64))
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [np.zeros(len(self.bounds) + 1, dtype=np.int64), 0.0]
            series[0] += counts
            series[1] += total

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            series = [(labels, counts.cumsum(), total) for labels, (counts, total) in self._series.items()]
        for labels, cumulative, total in series:
            buckets = [(f"{bound:g}" if bound != int(bound) else f"{bound:.1f}", int(count))
                       for bound, count in zip(self.bounds, cumulative)]
            family.add_metric(list(labels), buckets + [("+Inf", int(cumulative[-1]))], total)
        yield family

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]


def read_monitoring_config(path: str) -> str | None:
    """The metrics path from a monitoring config file, or None when Prometheus is off.

    The file is TF Serving's text MonitoringConfig:
        prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }
    """
    text = open(path).read()
    block = re.search(r"prometheus_config\s*\{([^}]*)\}", text)
    if block is None:
        raise ValueError(f"{path}: expected a prometheus_config {{ ... }} block")
    enable = re.search(r"\benable\s*:\s*(true|false)\b", block.group(1))
    if enable is None or enable.group(1) == "false":
        return None
    configured = re.search(r'\bpath\s*:\s*"([^"]*)"', block.group(1))
    return configured.group(1) if configured and configured.group(1) else DEFAULT_PATH


class ServerMetrics:
    def __init__(self, models: Container[str] | None = None) -> None:
        """`models`: the names served (a live container; the server's own dict); None takes any name."""
        self.models = models
        self.registry = CollectorRegistry()
        self.tfs_requests = Counter(":tensorflow:serving:request_count", "Requests by model and status",
                                    ["model_name", "status"], registry=self.registry)
        self.tfs_latency = Histogram(":tensorflow:serving:request_latency", "Request latency in seconds",
                                     ["model_name", "API", "entrypoint"], buckets=LATENCY_BUCKETS,
                                     registry=self.registry)
        self.requests = Counter("model_server_requests", "Requests by model, version, API and outcome",
                                ["model", "version", "api", "entrypoint", "status"], registry=self.registry)
        self.latency = Histogram("model_server_request_latency_seconds", "Latency by model, version and API",
                                 ["model", "version", "api", "entrypoint"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self._children: dict = {}
        self.loads = Counter("model_server_load_events", "Version loads and unloads by outcome",
                             ["model", "version", "event"], registry=self.registry)
        # Sampled requests missing from the request log (the requests themselves were answered):
        # reason dropped (writer's queue full), write_error (e.g. a full disk), encode_error.
        self.request_log_errors = Counter("model_server_request_log_errors", "Request-log records lost, by reason",
                                          ["reason"], registry=self.registry)
        # Routing: `arm` is the label the router chose; requests that were not routed are not here.
        self.routed_requests = Counter("model_server_routed_requests", "Routed requests by arm, version and outcome",
                                       ["model", "arm", "version", "status"], registry=self.registry)
        # Every predict answer that is one probability per row; arm "" for requests not routed.
        self.prediction_score = ArrayHistogram("model_server_prediction_score", "Predicted probabilities answered",
                                               ["model", "version", "arm"], SCORE_BUCKETS, self.registry)
        self.shadow_requests = Counter("model_server_shadow_requests", "Shadow calls by version and outcome "
                                       "(ok, error, dropped)", ["model", "version", "status"], registry=self.registry)
        self.shadow_score = ArrayHistogram("model_server_shadow_score", "Predicted probabilities of shadow calls",
                                           ["model", "version"], SCORE_BUCKETS, self.registry)
        self.routing_weight = Gauge("model_server_routing_weight", "Share of routed requests each arm gets",
                                    ["model", "arm"], registry=self.registry)
        self.routing_fallbacks = Counter("model_server_routing_fallbacks", "Routed requests whose picked label had "
                                         "no loaded version", ["model", "label"], registry=self.registry)

    @contextlib.contextmanager
    def request(self, model: str, api: str, entrypoint: str) -> Iterator[dict]:
        """Time one request; the caller sets info['version'] once known and info['status'] on error."""
        started = time.perf_counter()
        # "arm": set by a routed request; "started": for the request log's latency of the call.
        info = {"version": "", "status": "OK", "arm": "", "started": started}
        if self.models is not None and model not in self.models:
            model = UNKNOWN_MODEL
        try:
            yield info
        except asyncio.CancelledError:  # the caller gave up (deadline, disconnect)
            if info["status"] == "OK":
                info["status"] = "CANCELLED"
            raise
        except Exception:
            if info["status"] == "OK":
                info["status"] = "UNKNOWN"
            raise
        finally:
            seconds = time.perf_counter() - started
            version, status = info["version"], info["status"]
            self._child(self.tfs_requests, model, status).inc()
            self._child(self.tfs_latency, model, api, entrypoint).observe(seconds)
            self._child(self.requests, model, version, api, entrypoint, status).inc()
            self._child(self.latency, model, version, api, entrypoint).observe(seconds)
            if info["arm"]:
                self._child(self.routed_requests, model, info["arm"], version, status).inc()

    def observe_scores(self, model: str, version: int, arm: str, outputs: Mapping[str, np.ndarray]) -> None:
        """The probabilities of a served predict answer, if it is one per row (see probabilities)."""
        values = probabilities(outputs)
        if values is not None:
            self.prediction_score.observe_many((model, str(version), arm), values)

    def shadow_call(self, model: str, version: str, status: str, outputs: Mapping[str, np.ndarray] | None = None):
        """One shadow call's outcome, and its probabilities when it answered."""
        self._child(self.shadow_requests, model, version, status).inc()
        values = probabilities(outputs) if outputs is not None else None
        if values is not None:
            self.shadow_score.observe_many((model, version), values)

    def set_routing_weights(self, weights: dict[str, dict[str, float]], old: dict[str, dict[str, float]]) -> None:
        """The weights in force; arms and models no longer routed lose their series."""
        for model, arms in old.items():
            for arm in arms:
                if arm not in weights.get(model, {}):
                    self.routing_weight.remove(model, arm)
        for model, arms in weights.items():
            for arm, weight in arms.items():
                self.routing_weight.labels(model, arm).set(weight)

    def routing_fallback(self, model: str, label: str) -> None:
        self._child(self.routing_fallbacks, model, label).inc()

    def _child(self, metric, *labels: str):
        """metric.labels(*labels), remembered: the lookup costs more than the update."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
