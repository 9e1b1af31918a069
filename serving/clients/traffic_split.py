"""A/B and canary traffic: each call goes to one version label, picked by weight."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from serving.request_ids import Predictions

if TYPE_CHECKING:  # named for the reader only: a split over REST clients needs no TensorFlow
    from serving.clients.grpc_client import GrpcClient
    from serving.clients.rest_client import RestClient


class TrafficSplitClient:
    """Sends each predict call to one label's client, picked by weight.

    `clients` maps a label (e.g. "stable", "canary") to a client already bound to that
    label; the server's per-version metrics then show how each version does.
    """

    def __init__(self, clients: dict[str, GrpcClient | RestClient], weights: dict[str, float], seed: int | None = None):
        if set(clients) != set(weights) or any(w < 0 for w in weights.values()) or not sum(weights.values()):
            raise ValueError("give a non-negative weight, not all zero, for each label's client")
        self.clients, self.labels = clients, list(weights)
        self.weights = [weights[label] for label in self.labels]
        self._random = random.Random(seed)

    def predict(self, rows: Sequence[Mapping[str, str]], **options) -> tuple[str, np.ndarray]:
        """(label the request went to, its answer); `options` (request_ids too) go to the client's predict."""
        label = self._pick()
        return label, self.clients[label].predict(rows, **options)

    def predict_with_ids(self, rows: Sequence[Mapping[str, str]], **options) -> tuple[str, Predictions]:
        """(label the request went to, its answer with each row's request id); see the clients' predict_with_ids."""
        label = self._pick()
        return label, self.clients[label].predict_with_ids(rows, **options)

    def _pick(self) -> str:
        return self._random.choices(self.labels, self.weights)[0]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
