"""A monitoring pass's report: JSON for machines, one HTML page for people, and Prometheus series.

The Prometheus series go to a textfile (node_exporter's textfile collector, or any
scrape of a file server), written by
prometheus_client's write_to_textfile, which renames a complete file into place. The
serving drift of the pass (serving_drift.py) goes into the same file: one pass, one file.
"""
from __future__ import annotations

import datetime
import html
import json
import pathlib

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from pipeline.monitoring.live_quality import SliceQuality
from pipeline.monitoring.monitor_record import VersionQuality
from pipeline.monitoring.triggers import Decision

PROMETHEUS_FILE = "live_quality.prom"


def report_data(*, pipeline_name: str, window: tuple[float, float], now: float, decision: Decision,
                versions: list[VersionQuality], qualities: list[SliceQuality], outcomes: dict, skipped: dict,
                drift: dict | None, captured: dict | None, min_examples: int) -> dict:
    return {
        "pipeline": pipeline_name,
        "window": {"start": window[0], "end": window[1]},
        "generated_at": now,
        "decision": {"verdict": decision.verdict, "reasons": [str(r) for r in decision.reasons],
                     "notes": decision.notes},
        "versions": [vars(v) for v in versions],
        "slices": [{"version": q.version, "version_label": q.version_label, "slice": q.slice,
                    "gated": q.gated(min_examples), **q.metrics} for q in qualities],
        "outcomes": outcomes,
        "skipped_records": skipped,
        "serving_drift": drift,  # ServingDrift.as_dict(); None when monitor_serving_drift is off
        "captured_span": captured,
    }


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _drift_html(drift: dict | None) -> str:
    if drift is None:
        return "<p>not measured (monitor_serving_drift is off)</p>"
    rows = "".join(
        f"<tr{' class=low' if d['exceeded'] else ''}><td>{html.escape(d['feature'])}</td>"
        f"<td>{html.escape(d['comparator'])}</td><td>{_fmt(d['value'])}</td><td>{_fmt(float(d['threshold']))}</td>"
        f"<td>{'yes' if d['exceeded'] else 'no'}</td></tr>" for d in drift["features"])
    table = ("<table><tr><th>feature</th><th>comparator</th><th>value</th><th>threshold</th><th>over</th></tr>"
             f"{rows}</table>") if rows else ""
    return f"<p>{html.escape(drift['summary'])}</p>{table}"


def _html(data: dict) -> str:
    decision = data["decision"]
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in decision["reasons"] + decision["notes"])
    version_rows = "".join(
        f"<tr><td>{v['version']}</td><td>{v['logged']}</td><td>{v['labelled']}</td><td>{v['coverage']:.1%}</td>"
        f"<td>{_fmt(v['auc'])}</td><td>{_fmt(v['offline_auc'])}</td><td>{html.escape(v['worst_slice'])}</td>"
        f"<td>{_fmt(v['worst_slice_auc'])}</td></tr>" for v in data["versions"])
    slice_rows = "".join(
        f"<tr{' class=low' if s['gated'] and s.get('auc', 1) < data.get('floor', 0) else ''}><td>{s['version']}</td>"
        f"<td>{html.escape(s['version_label'] or 'any')}</td><td>{html.escape(s['slice'])}</td>"
        f"<td>{int(s.get('example_count', 0))}</td><td>{'yes' if s['gated'] else 'no'}</td>"
        + "".join(f"<td>{_fmt(s.get(name))}</td>" for name in ("auc", "precision", "recall", "calibration"))
        + "</tr>" for s in data["slices"])
    outcomes = data["outcomes"]
    title = f"Live quality: {html.escape(data['pipeline'])}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:2px 6px;text-align:right}}td:nth-child(3){{text-align:left}}.low{{background:#fdd}}</style></head><body>
<h1>Live quality of {html.escape(data['pipeline'])}</h1>
<p>Requests logged from {_time(data['window']['start'])} to {_time(data['window']['end'])} (UTC).</p>
<h2>Decision: {html.escape(decision['verdict'])}</h2><ul>{reasons}</ul>
<h2>Versions</h2><table><tr><th>version</th><th>logged rows</th><th>with outcome</th><th>coverage</th>
<th>live AUC</th><th>offline AUC</th><th>worst gated slice</th><th>its AUC</th></tr>{version_rows}</table>
<h2>Outcomes</h2><p>{outcomes['rows']} outcome rows in {outcomes['files']} files; {outcomes['duplicates']} duplicate
ids counted once ({outcomes['conflicting']} with a different label); {outcomes['unmatched']} match no request of
the window; newest observed {_fmt(outcomes['newest_age_seconds'])} s before this report.</p>
<h2>Slices</h2><table><tr><th>version</th><th>label</th><th>slice</th><th>examples</th><th>gated</th><th>AUC</th>
<th>precision</th><th>recall</th><th>calibration</th></tr>{slice_rows}</table>
<h2>Serving drift</h2>{_drift_html(data['serving_drift'])}
<h2>Captured span</h2><p>{html.escape(json.dumps(data['captured_span'])) if data['captured_span'] else 'none'}</p>
</body></html>
"""


def _time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def write_report(folder: pathlib.Path, data: dict, floor: float) -> tuple[pathlib.Path, pathlib.Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "live_quality.json", folder / "live_quality.html"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True))
    html_path.write_text(_html({**data, "floor": floor}))
    return json_path, html_path


def write_prometheus(path: pathlib.Path, data: dict, min_examples: int) -> None:
    """Gauges of the newest pass; a scrape sees one whole file or the previous one."""
    registry = CollectorRegistry()
    labels = ("pipeline", "model_version", "version_label", "slice")
    metrics = {name: Gauge(f"taxi_live_{name}", help_text, labels, registry=registry) for name, help_text in (
        ("auc", "Live AUC of the logged predictions joined with their outcomes"),
        ("precision", "Live precision at 0.5"), ("recall", "Live recall at 0.5"),
        ("calibration", "Mean prediction / mean label of live traffic"),
        ("examples", "Logged predictions with an outcome in the window"))}
    gated = Gauge("taxi_live_slice_gated", "1 when the slice holds enough examples of each class to judge its AUC",
                  labels, registry=registry)
    coverage = Gauge("taxi_live_label_coverage", "Share of the window's logged predictions with an outcome",
                     ("pipeline", "model_version"), registry=registry)
    age = Gauge("taxi_live_newest_outcome_age_seconds", "Age of the newest outcome at the pass", ("pipeline",),
                registry=registry)
    decision = Gauge("taxi_monitor_trigger", "1 when the last pass decided to start a run", ("pipeline",),
                     registry=registry)
    last = Gauge("taxi_monitor_last_pass_timestamp_seconds", "When the last pass ran", ("pipeline",),
                 registry=registry)
    drift = Gauge("taxi_serving_feature_drift", "The window's serving traffic against the served version's "
                  "training data, by the feature's skew comparator in the schema (L-infinity or Jensen-Shannon)",
                  ("pipeline", "feature"), registry=registry)
    drift_threshold = Gauge("taxi_serving_feature_drift_threshold", "The schema's skew threshold of the feature",
                            ("pipeline", "feature"), registry=registry)
    pipeline = data["pipeline"]
    for item in data["slices"]:
        key = (pipeline, str(item["version"]), item["version_label"] or "any", item["slice"])
        for name in ("auc", "precision", "recall", "calibration"):
            if item.get(name) is not None:
                metrics[name].labels(*key).set(item[name])
        metrics["examples"].labels(*key).set(item.get("example_count", 0))
        gated.labels(*key).set(1 if item["gated"] else 0)
    for version in data["versions"]:
        coverage.labels(pipeline, str(version["version"])).set(version["coverage"])
    if data["outcomes"]["newest_age_seconds"] is not None:
        age.labels(pipeline).set(data["outcomes"]["newest_age_seconds"])
    decision.labels(pipeline).set(1 if data["decision"]["verdict"] == "trigger" else 0)
    last.labels(pipeline).set(data["generated_at"])
    for item in (data["serving_drift"] or {}).get("features", []):
        drift_threshold.labels(pipeline, item["feature"]).set(item["threshold"])
        if item["value"] is not None:  # not measurable: no series rather than a made-up 0
            drift.labels(pipeline, item["feature"]).set(item["value"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
