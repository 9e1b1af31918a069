"""What both front ends do once a predict call has its answer, before it goes back: count its
probabilities per version and arm, log it, and hand it to the shadow version (if the routing
file names one). Each step only records or queues: none of them can fail or slow the answer."""
from __future__ import annotations

import time

import numpy as np

from serving.server.metrics import ServerMetrics
from serving.server.model_store import ModelStore
from serving.server.request_log import RequestLog
from serving.server.routing import Router
from serving.server.shadow import ShadowRunner


def predict_answered(store: ModelStore, version: int, signature: str, inputs: dict[str, np.ndarray],
                     outputs: dict[str, np.ndarray], *, request_ids: list[str], info: dict, version_label: str | None,
                     metrics: ServerMetrics, request_log: RequestLog | None, router: Router,
                     shadow: ShadowRunner | None) -> None:
    """`info` is the metrics' dict of the request (its arm, when it started)."""
    arm, now = info["arm"], time.time()
    metrics.observe_scores(store.name, version, arm, outputs)
    logged = False
    if request_log is not None:
        logged = request_log.record(store.name, version, signature, inputs, outputs, request_ids=request_ids,
                                    version_label=version_label, arm=arm,
                                    latency_seconds=time.perf_counter() - info["started"], timestamp=now)
    route = router.route_of(store.name)
    if shadow is not None and route is not None and route.shadow:
        shadow.submit(store, route.shadow, version, signature, inputs, request_ids=request_ids, arm=arm,
                      logged=logged, timestamp=now)
