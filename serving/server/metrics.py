"""Prometheus metrics of the model server, on the REST port like TF Serving's.

TF Serving's own series (`:tensorflow:serving:request_count`, `...:request_latency`) keep
their names and labels so existing dashboards work; `model_server_*` series add the model
version, which canary and A/B comparisons need. Requests for models the server does not
serve are counted under the model name `__unknown__` (TF Serving uses the name sent), so
clients cannot add series without bound.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Container, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

DEFAULT_PATH = "/monitoring/prometheus/metrics"
UNKNOWN_MODEL = "__unknown__"  # the model label of requests for a model that is not served
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)


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

    @contextlib.contextmanager
    def request(self, model: str, api: str, entrypoint: str) -> Iterator[dict]:
        """Time one request; the caller sets info['version'] once known and info['status'] on error."""
        info = {"version": "", "status": "OK"}
        started = time.perf_counter()
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

    def _child(self, metric, *labels: str):
        """metric.labels(*labels), remembered: the lookup costs more than the update."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
