"""Prometheus's HTTP API as the tests read it: instant queries, alerts, scrape targets.

Scrapes and rule evaluations happen on Prometheus's clock, so every read that expects
something has a `wait_for` form that polls until the answer holds or a deadline passes,
and then fails with the last answer in the message.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

import requests

T = TypeVar("T")


class PrometheusError(RuntimeError):
    pass


class PrometheusAPI:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _get(self, path: str, **params) -> dict:
        reply = requests.get(f"{self.url}{path}", params=params, timeout=10)
        body = reply.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector of `expr` now: [{'metric': {...}, 'value': [t, 'v']}, ...]; a bad expr raises."""
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] != "vector":
            return [{"metric": {}, "value": data["result"]}]  # a scalar or string
        return data["result"]

    def alerts(self) -> list[dict]:
        """Active alerts (pending and firing) with their labels, annotations and state."""
        return self._get("/api/v1/alerts")["alerts"]

    def rules(self) -> list[dict]:
        """Every loaded rule, flattened out of its group, with health and lastError."""
        return [rule for group in self._get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets")["activeTargets"]

    def firing(self, alertname: str) -> list[dict]:
        return [a for a in self.alerts() if a["labels"].get("alertname") == alertname and a["state"] == "firing"]

    def wait_for(self, read: Callable[[], T], holds: Callable[[T], bool], what: str, seconds: float = 60) -> T:
        """Poll read() until holds(answer); fail naming `what` and the last answer."""
        deadline = time.monotonic() + seconds
        while True:
            answer = read()
            if holds(answer):
                return answer
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus did not show {what} within {seconds:.0f} s; last answer: {answer}")
            time.sleep(0.5)
