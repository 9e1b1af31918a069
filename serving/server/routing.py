"""Server-side traffic routing: a model's requests split between its version labels by weight.

The routing file (`--routing_config_file`) is JSON, written atomically (a rename) by whoever
moves traffic, e.g. `taxi-pipeline release`:

    {"models": {"taxi-tips": {"weights": {"stable": 95, "canary": 5},
                              "routing_key": "x-routing-key", "shadow": "canary"}}}

Only requests that name the model and neither a version nor a label are routed; the others
go where they ask. A model absent from the file is served as without routing. Stickiness:
the routing key's value (a REST header or gRPC metadata entry, named by `routing_key`) is
hashed with the model name to a number u in [0, 1), and the labels are laid out on [0, 1)
by weight, every label but "stable" first (sorted) and "stable" last. Raising the canary's
weight therefore only moves keys from stable to canary, never back. A request without a key
gets a random u. A picked label that names no loaded version falls back to "stable", then to
the newest version (served as if not routed); each fallback is counted.

The file is read at start and re-read when its content changes; a bad file is logged with
its path and the reason and the routing in force stays. The table is swapped in one
assignment, so no request ever sees half a reload.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import re
import threading
from typing import TYPE_CHECKING, Any, Callable

from serving.server.errors import ServingError

if TYPE_CHECKING:  # the file's reader and the pick need no TensorFlow
    from serving.server.metrics import ServerMetrics
    from serving.server.model_store import ModelStore

log = logging.getLogger("serving.routing")

STABLE = "stable"  # the label every other label's traffic is taken from
# Answer headers (REST) and trailing metadata (gRPC): the arm chosen, absent when not routed; the version
# that answered, on every successful predict, classify and regress answer.
ARM_HEADER, VERSION_HEADER = "x-model-arm", "x-model-version"
DEFAULT_ROUTING_KEY = "x-routing-key"
DEFAULT_POLL_SECONDS = 5.0
# gRPC metadata keys are lower case; "-bin" keys carry bytes, not a routing key.
_KEY_NAME = re.compile(r"[0-9a-z_.-]+")
_MODEL_KEYS = {"weights", "routing_key", "shadow"}


class RoutingFileError(ValueError):
    """A routing file that cannot be applied; the message names the file and what is wrong."""


@dataclasses.dataclass(frozen=True)
class ModelRoute:
    """One model's routing: labels in pick order with their normalised weights."""
    weights: tuple[tuple[str, float], ...]  # non-"stable" labels sorted, then "stable"
    routing_key: str = DEFAULT_ROUTING_KEY
    shadow: str | None = None  # a label, or a version number as a string

    def pick(self, model: str, key: str | None, draw: Callable[[], float] = random.random) -> str:
        """The label for a request with routing key `key` (None or "": a random pick)."""
        u = key_position(model, key) if key else draw()
        total = 0.0
        for label, weight in self.weights:
            total += weight
            if u < total:
                return label
        # u fell past the last boundary by rounding: the last label with weight has it.
        return [label for label, weight in self.weights if weight > 0][-1]


def key_position(model: str, key: str) -> float:
    """Where a routing key sits on [0, 1): sha256 of "<model>\\n<key>", its first 8 bytes as a fraction."""
    digest = hashlib.sha256(f"{model}\n{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _pick_order(label: str) -> tuple[bool, str]:
    return label == STABLE, label


def _model_route(source: str, model: str, spec: Any) -> ModelRoute:
    where = f"routing file {source}, model {model!r}"
    if not isinstance(spec, dict):
        raise RoutingFileError(f"{where}: expected an object with \"weights\", not {type(spec).__name__}")
    unknown = sorted(set(spec) - _MODEL_KEYS)
    if unknown:
        raise RoutingFileError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a model takes "
                               f"{', '.join(sorted(_MODEL_KEYS))}")
    weights = spec.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise RoutingFileError(f"{where}: \"weights\" must map version labels to numbers, e.g. "
                               "{\"stable\": 95, \"canary\": 5}")
    for label, weight in weights.items():
        if not label:
            raise RoutingFileError(f"{where}: an empty version label in \"weights\"")
        # bool is an int to Python, never a weight to a person writing the file.
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise RoutingFileError(f"{where}: the weight of {label!r} is {json.dumps(weight)}; give a number 0 or more")
    total = float(sum(weights.values()))
    if total <= 0:
        raise RoutingFileError(f"{where}: every weight is 0; give at least one label a positive weight")
    routing_key = spec.get("routing_key", DEFAULT_ROUTING_KEY)
    if not isinstance(routing_key, str) or not _KEY_NAME.fullmatch(routing_key) or routing_key.endswith("-bin"):
        raise RoutingFileError(f"{where}: \"routing_key\" {json.dumps(routing_key)} is no header name a gRPC "
                               "client can send: use lower-case letters, digits, '-', '_' and '.' (not ending in -bin)")
    shadow = spec.get("shadow")
    if shadow is not None and (not isinstance(shadow, str) or not shadow):
        raise RoutingFileError(f"{where}: \"shadow\" must be a version label or a version number as a string, "
                               f"not {json.dumps(shadow)}")
    ordered = tuple((label, weights[label] / total) for label in sorted(weights, key=_pick_order))
    return ModelRoute(ordered, routing_key, shadow)


def parse_routing(text: str, source: str = "<text>") -> dict[str, ModelRoute]:
    """The routes of a routing file's text; RoutingFileError naming `source` (and the line for bad JSON)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise RoutingFileError(f"routing file {source}, line {error.lineno} column {error.colno}: not JSON: "
                               f"{error.msg}") from None
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise RoutingFileError(f"routing file {source}: expected {{\"models\": {{<model name>: {{\"weights\": "
                               "{...}}}}}} at the top")
    unknown = sorted(set(document) - {"models"})
    if unknown:
        raise RoutingFileError(f"routing file {source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
                               "only \"models\" is read")
    return {model: _model_route(source, model, spec) for model, spec in document["models"].items()}


@dataclasses.dataclass(frozen=True)
class Routed:
    """The version a request goes to, and the arm it was routed to ("" when not routed)."""
    version: int
    model: Any
    signature_defs: Any
    arm: str = ""


class Router:
    """The routing table in force, read from a file and re-read when the file changes."""

    def __init__(self, path: str | None = None, metrics: ServerMetrics | None = None,
                 poll_seconds: float = DEFAULT_POLL_SECONDS, routes: dict[str, ModelRoute] | None = None):
        """`path` None: the table is only what `apply` is given (`routes` to start with)."""
        self.path, self.poll_seconds, self.metrics = path, poll_seconds, metrics
        self._routes: dict[str, ModelRoute] = {}
        self._last_text: str | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if routes is not None:
            self.apply(routes)

    @property
    def routes(self) -> dict[str, ModelRoute]:
        return self._routes

    def load(self) -> None:
        """Apply the file now; RoutingFileError (file and reason) when it cannot be, the table unchanged."""
        with self._reload_lock:
            try:
                with open(self.path, encoding="utf-8") as file:
                    text = file.read()
            except (OSError, UnicodeDecodeError) as error:
                raise RoutingFileError(f"routing file {self.path}: cannot be read: {error}") from None
            routes = parse_routing(text, self.path)
            self._last_text = text
            self.apply(routes)

    def reload_if_changed(self) -> bool:
        """Re-read the file; apply it when its content changed. A bad file is logged (once per content)
        and the routing in force stays. True when a new table was applied."""
        with self._reload_lock:
            try:
                with open(self.path, encoding="utf-8") as file:
                    text = file.read()
            except (OSError, UnicodeDecodeError) as error:
                if self._last_text != "":  # "" marks an unreadable file already reported
                    log.error("routing file %s: cannot be read (%s); the routing in force stays", self.path, error)
                    self._last_text = ""
                return False
            if text == self._last_text:
                return False
            self._last_text = text
            try:
                routes = parse_routing(text, self.path)
            except RoutingFileError as error:
                log.error("%s; the routing in force stays", error)
                return False
            self.apply(routes)
            log.info("routing file %s applied: %s", self.path, describe(routes) or "no model routed")
            return True

    def apply(self, routes: dict[str, ModelRoute]) -> None:
        """Put `routes` in force: one assignment, so a request reads the old table or the new one."""
        old, self._routes = self._routes, dict(routes)
        if self.metrics is not None:
            self.metrics.set_routing_weights(
                {model: dict(route.weights) for model, route in self._routes.items()},
                {model: dict(route.weights) for model, route in old.items()})

    def start(self) -> None:
        """Watch the file every poll_seconds (0: never re-read)."""
        if self.path and self.poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="routing-file", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.reload_if_changed()
            except Exception:  # the watcher must outlive any surprise, or routing freezes unseen
                log.exception("routing file %s: re-reading failed", self.path)

    def route_of(self, model: str) -> ModelRoute | None:
        return self._routes.get(model)

    def resolve(self, store: ModelStore, version: int | None, label: str | None,
                header: Callable[[str], str | None]) -> Routed:
        """The version a request goes to: where it asks when it names a version or label, else the
        routed arm's; `header(name)` gives the request's routing key (None when absent)."""
        route = self._routes.get(store.name) if version is None and not label else None
        if route is None:
            return Routed(*store.resolve_with_signature_defs(version, label))
        picked = route.pick(store.name, header(route.routing_key))
        try:
            return Routed(*store.resolve_with_signature_defs(None, picked), arm=picked)
        except ServingError:  # the label names no version, or one not loaded (yet, or any more)
            pass
        if self.metrics is not None:
            self.metrics.routing_fallback(store.name, picked)
        if picked != STABLE:
            try:
                return Routed(*store.resolve_with_signature_defs(None, STABLE), arm=STABLE)
            except ServingError:
                pass
        return Routed(*store.resolve_with_signature_defs(None, None))  # the newest: served as if not routed


def describe(routes: dict[str, ModelRoute]) -> str:
    """`taxi-tips: canary 5.00%, stable 95.00%` for the log."""
    return "; ".join(f"{model}: " + ", ".join(f"{label} {weight:.2%}" for label, weight in route.weights)
                     + (f" (shadow {route.shadow})" if route.shadow else "") for model, route in routes.items())
