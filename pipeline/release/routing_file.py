"""The release's hand on traffic: the model server's routing file (format in serving/README.md).

The server re-reads the file when its content changes, so a weight written here takes
effect at the server's next poll without dropping a request. Written to a hidden file
and renamed into place: a polling server reads the old file or the new one, never half.
"""
from __future__ import annotations

import json
import os


class RoutingFileError(ValueError):
    """The routing file exists but is not one the release can edit; it is left as it is."""


def read_routing(path: str) -> dict:
    if not os.path.exists(path):
        return {"models": {}}
    try:
        with open(path) as source:
            routing = json.load(source)
    except (OSError, ValueError) as error:
        raise RoutingFileError(f"{path}: not a readable JSON routing file ({error}); fix or remove it") from None
    if not isinstance(routing, dict) or not isinstance(routing.get("models", {}), dict):
        raise RoutingFileError(f'{path}: expected {{"models": {{"<model>": {{"weights": ...}}}}}}')
    routing.setdefault("models", {})
    return routing


def set_route(path: str, model: str, canary_percent: float, shadow: str | None = None,
              routing_key: str | None = None) -> dict:
    """Send `canary_percent` of the model's unaddressed requests to `canary`, the rest to `stable`;
    `shadow`: the label run beside the serving one (None: no shadow). Returns the model's new entry."""
    routing = read_routing(path)
    entry = dict(routing["models"].get(model, {}))
    entry["weights"] = {"stable": round(100.0 - canary_percent, 6), "canary": round(canary_percent, 6)}
    if shadow:
        entry["shadow"] = shadow
    else:
        entry.pop("shadow", None)
    if routing_key:
        entry["routing_key"] = routing_key
    routing["models"][model] = entry
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f".{os.path.basename(path)}.release")
    with open(staging, "w") as out:
        json.dump(routing, out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(staging, path)
    return entry
