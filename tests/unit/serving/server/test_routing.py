"""The routing file and the sticky pick: what an operator writes, and where each key goes."""
from __future__ import annotations

import json
import logging
import math
import os

import pytest

from serving.server.metrics import ServerMetrics
from serving.server.routing import Router, RoutingFileError, key_position, parse_routing

MODEL = "taxi-tips"
KEYS = [f"rider-{number}" for number in range(2000)]


def _route(weights: dict, **extra):
    return parse_routing(json.dumps({"models": {MODEL: {"weights": weights, **extra}}}), "routing.json")[MODEL]


def _write(path, weights: dict, **extra) -> None:
    """As the routing file's writers do: a new file renamed over the old one."""
    staging = f"{path}.tmp"
    with open(staging, "w") as file:
        json.dump({"models": {MODEL: {"weights": weights, **extra}}}, file)
    os.replace(staging, path)


def test_weights_are_normalised_and_stable_comes_last():
    route = _route({"stable": 95, "canary": 5, "blue": 0})
    assert route.weights == (("blue", 0.0), ("canary", 0.05), ("stable", 0.95))
    assert route.routing_key == "x-routing-key" and route.shadow is None
    assert _route({"stable": 1}, routing_key="rider-id", shadow="1795435162").shadow == "1795435162"


def test_the_same_key_always_reaches_the_same_arm():
    route = _route({"stable": 50, "canary": 50})
    first = [route.pick(MODEL, key) for key in KEYS]
    assert [route.pick(MODEL, key) for key in KEYS] == first
    # The model is part of the hash: another model's split of the same riders is independent.
    assert key_position("other-model", "rider-1") != key_position(MODEL, "rider-1")


def test_the_split_over_many_keys_matches_the_weights():
    for share in (0.05, 0.25, 0.5):
        route = _route({"stable": 1 - share, "canary": share})
        canary = sum(route.pick(MODEL, key) == "canary" for key in KEYS)
        # Binomial: within 4 standard deviations of n * p (a false alarm about once in 16,000 runs).
        tolerance = 4 * math.sqrt(len(KEYS) * share * (1 - share))
        assert abs(canary - len(KEYS) * share) <= tolerance, (share, canary)


def test_raising_the_canary_weight_only_moves_keys_from_stable_to_canary():
    before = {key: _route({"stable": 95, "canary": 5}).pick(MODEL, key) for key in KEYS}
    after = {key: _route({"stable": 75, "canary": 25}).pick(MODEL, key) for key in KEYS}
    moved = {(before[key], after[key]) for key in KEYS if before[key] != after[key]}
    assert moved == {("stable", "canary")}
    assert sum(arm == "canary" for arm in after.values()) > sum(arm == "canary" for arm in before.values())


def test_no_key_is_a_random_pick_by_weight():
    route = _route({"stable": 80, "canary": 20})
    assert route.pick(MODEL, None, draw=lambda: 0.1) == "canary"
    assert route.pick(MODEL, "", draw=lambda: 0.5) == "stable"
    # A draw on the last boundary (rounding) still lands on a label with weight.
    assert _route({"stable": 0, "canary": 3}).pick(MODEL, None, draw=lambda: 0.9999999999999999) == "canary"


@pytest.mark.parametrize("text, reason", [
    ('{"models": {"m": {"weights": {"stable": 0, "canary": 0}}}}', "every weight is 0"),
    ('{"models": {"m": {"weights": {"stable": -1}}}}', "the weight of 'stable' is -1"),
    ('{"models": {"m": {"weights": {"stable": "95"}}}}', "the weight of 'stable' is \"95\""),
    ('{"models": {"m": {"weights": {}}}}', '"weights" must map version labels to numbers'),
    ('{"models": {"m": {"weights": {"stable": 1}, "wieghts": {}}}}', "unknown key(s) 'wieghts'"),
    ('{"models": {"m": {"weights": {"stable": 1}, "routing_key": "Rider Id"}}}', '"routing_key" "Rider Id"'),
    ('{"models": {"m": {"weights": {"stable": 1}, "shadow": 7}}}', '"shadow" must be a version label'),
    ('{"model": {}}', 'expected {"models"'),
    ('{"models": {}, "extra": 1}', "unknown top-level key(s) 'extra'"),
    ('{\n  "models": {,}\n}', "line 2 column 14: not JSON"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_reason(text, reason):
    with pytest.raises(RoutingFileError) as error:
        parse_routing(text, "deploy/routing.json")
    assert "routing file deploy/routing.json" in str(error.value) and reason in str(error.value)


def test_the_shipped_example_routing_file_applies():
    example = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "serving", "deploy", "routing.json")
    with open(example) as file:
        routes = parse_routing(file.read(), example)
    assert dict(routes["taxi-tips"].weights) == {"canary": 0.05, "stable": 0.95}


def test_a_changed_file_is_applied_and_a_bad_one_keeps_the_routing_in_force(tmp_path, caplog):
    path = str(tmp_path / "routing.json")
    _write(path, {"stable": 90, "canary": 10})
    metrics = ServerMetrics()
    router = Router(path, metrics, poll_seconds=0)
    router.load()

    def weight(arm: str) -> float | None:
        return metrics.registry.get_sample_value("model_server_routing_weight", {"model": MODEL, "arm": arm})

    assert weight("canary") == pytest.approx(0.1)
    assert router.reload_if_changed() is False  # unchanged content: nothing to do

    _write(path, {"stable": 50, "canary": 50})
    assert router.reload_if_changed() is True
    assert dict(router.route_of(MODEL).weights) == {"canary": 0.5, "stable": 0.5} and weight("canary") == 0.5

    with caplog.at_level(logging.ERROR, logger="serving.routing"):
        _write(path, {"stable": 0})
        assert router.reload_if_changed() is False
        assert router.reload_if_changed() is False  # reported once, not at every poll
    assert dict(router.route_of(MODEL).weights) == {"canary": 0.5, "stable": 0.5}
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and path in errors[0] and "every weight is 0" in errors[0], errors

    _write(path, {"stable": 100})  # a dropped arm loses its series
    assert router.reload_if_changed() is True
    assert weight("stable") == 1.0 and weight("canary") is None


def test_a_missing_file_at_start_is_an_error_naming_it(tmp_path):
    with pytest.raises(RoutingFileError, match="routing file .*nowhere.json: cannot be read"):
        Router(str(tmp_path / "nowhere.json")).load()


def test_the_istio_manifest_routes_both_arms_and_mirrors_to_the_shadow():
    import yaml
    manifest = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "serving", "deploy", "k8s",
                            "istio-canary.yaml")
    with open(manifest) as file:
        service, envoy_filter, shadow = yaml.safe_load_all(file)
    routes = {route["name"]: route for route in service["spec"]["http"]}
    assert routes["canary"]["match"][0]["headers"]["x-model-arm"] == {"exact": "canary"}
    assert routes["canary"]["rewrite"]["uriRegexRewrite"]["rewrite"].endswith("/labels/canary:")
    assert routes["stable"]["rewrite"]["uriRegexRewrite"]["rewrite"].endswith("/labels/stable:")
    assert routes["stable"]["mirror"]["host"] == shadow["metadata"]["name"] == "taxi-tips-shadow"
    lua = envoy_filter["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["default_source_code"]
    assert "x-routing-key" in lua["inline_string"] and "CANARY_PERCENT = 5" in lua["inline_string"]
