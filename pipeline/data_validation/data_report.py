"""The data report: one static HTML page per run that opens offline.

TFDV's own visualisation (Facets) loads its scripts from the web; this page has its
charts inline as SVG and no external references, so it opens from a CI artifact or an
air-gapped machine. It shows the findings with what the gate does about each, every
drift/skew/volume measure and every span rule (time validity, repeated rows) against its
threshold, the difference between the curated
and the inferred schema, and per-feature statistics with a chart each.
"""
from __future__ import annotations

import datetime
import html

import numpy as np
from tensorflow_metadata.proto.v0 import statistics_pb2

from pipeline.data_validation import drift, findings, span_rules

CHART_BINS = 20
STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.stop { background: #fdd; } .warn { background: #ffe9b3; } .ok { color: #176617; }
.chart rect { fill: #4a7fb5; } .chart text { font-size: 10px; fill: #333; }
"""


def _escape(value) -> str:
    return html.escape(str(value))


def _table(table_id: str, header: list[str], rows: list[list], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{_escape(h)}</th>" for h in header)
    body = "".join(
        f"<tr class=\"{(row_classes or [''] * len(rows))[i]}\">" + "".join(f"<td>{_escape(c)}</td>" for c in row)
        + "</tr>" for i, row in enumerate(rows))
    return f"<table id=\"{table_id}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart(labels: list[str], values: list[float], title: str) -> str:
    """An inline SVG bar chart, one bar per label."""
    width, height, top, bottom = 360, 130, 14, 30
    peak = max(values) if values and max(values) > 0 else 1.0
    step = width / max(len(values), 1)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values)):
        bar_height = (height - top - bottom) * value / peak
        x = i * step
        bars.append(f"<rect x=\"{x + 1:.1f}\" y=\"{height - bottom - bar_height:.1f}\" "
                    f"width=\"{max(step - 2, 1):.1f}\" height=\"{bar_height:.1f}\">"
                    f"<title>{_escape(label)}: {value:g}</title></rect>")
        if len(labels) <= 12 or i % max(len(labels) // 6, 1) == 0:
            bars.append(f"<text x=\"{x + 2:.1f}\" y=\"{height - bottom + 12}\">{_escape(str(label)[:10])}</text>")
    return (f"<svg class=\"chart\" role=\"img\" width=\"{width}\" height=\"{height}\" "
            f"xmlns=\"http://www.w3.org/2000/svg\"><text x=\"0\" y=\"10\">{_escape(title)}</text>"
            + "".join(bars) + "</svg>")


def _feature_chart(feature: statistics_pb2.FeatureNameStatistics) -> str:
    if feature.HasField("string_stats"):
        top = list(feature.string_stats.top_values)[:12]
        return bar_chart([t.value for t in top], [t.frequency for t in top], "most frequent values")
    buckets = drift.quantile_buckets(feature)
    if not buckets:
        return "<p>no values</p>"
    # Equal-width bins between the 2nd and 98th percentile, filled from the quantile
    # histogram: TFDV's own histogram spans min to max, so one outlier flattens it.
    low, high = buckets[min(1, len(buckets) - 1)][0], buckets[max(len(buckets) - 2, 0)][1]
    if high <= low:
        low, high = buckets[0][0], buckets[-1][1] + 1e-9
    edges = np.linspace(low, high, CHART_BINS + 1)
    shares = np.diff(drift.cdf(buckets, edges))
    return bar_chart([f"{edge:.4g}" for edge in edges[:-1]], [float(s) for s in shares],
                     "distribution, 2nd to 98th percentile")


def _feature_summary(feature: statistics_pb2.FeatureNameStatistics, rows: int) -> list[str]:
    common = feature.num_stats.common_stats if feature.HasField("num_stats") else feature.string_stats.common_stats
    # Every feature holds at most one value, so rows without a value are the missing ones
    # (CsvExampleGen writes an empty cell as a present feature with no values).
    missing = 1 - common.tot_num_values / rows if rows else 0.0
    if feature.HasField("string_stats"):
        summary = f"{feature.string_stats.unique} distinct values"
    else:
        stats = feature.num_stats
        summary = f"mean {stats.mean:.4g}, std {stats.std_dev:.4g}, min {stats.min:.4g}, " \
                  f"median {stats.median:.4g}, max {stats.max:.4g}"
    return [str(int(common.tot_num_values)), f"{missing:.1%}", summary]


def render(training: statistics_pb2.DatasetFeatureStatistics, span: statistics_pb2.DatasetFeatureStatistics,
           span_name: str, found: list[findings.Finding], distances: list[drift.Distance], notes: list[str],
           rules: list[span_rules.RuleResult], schema_changes: list[str]) -> str:
    stopping = [f for f in found if f.action == findings.STOP]
    verdict = (f"<p class=\"stop\">The gate stops this run: {len(stopping)} finding(s).</p>" if stopping else
               f"<p class=\"ok\">Nothing stops this run ({len(found)} warning(s)).</p>")
    finding_rows = [[f.action, f.kind, f.feature or "(dataset)", f.what,
                     f.shown or ("" if f.value is None else f"{f.value:.4g}"), f.threshold, f.where] for f in found]
    rule_rows = [[r.kind, r.feature or "(dataset)", r.rule, r.shown, r.threshold,
                  "FAILED" if r.failed else ("ok" if r.value is not None else "not measured"), r.where] for r in rules]
    distance_rows = [[d.kind, d.feature or "(dataset)", d.comparator, "n/a" if d.value is None else f"{d.value:.4f}",
                      f"{d.threshold:g}" + (f" .. {d.max_ratio:g}" if d.max_ratio is not None else ""),
                      "OVER" if d.exceeded else "ok", f"{d.current} vs {d.reference}"] for d in distances]
    span_features = {f.path.step[0] if f.path.step else f.name: f for f in span.features}
    sections = []
    for feature in training.features:
        name = ".".join(feature.path.step) or feature.name
        cells = "".join(f"<td>{_escape(c)}</td>" for c in _feature_summary(feature, training.num_examples))
        span_cell = (_escape(_feature_summary(span_features[name], span.num_examples)[2])
                     if name in span_features else "not in this span")
        sections.append(f"<tr><td>{_escape(name)}</td>{cells}<td>{span_cell}</td>"
                        f"<td>{_feature_chart(feature)}</td></tr>")
    findings_html = (_table("findings", ["action", "kind", "feature", "what", "measured", "threshold", "where"],
                            finding_rows, [f.action for f in found]) if found
                     else '<p id="findings">No anomalies, drift or skew over threshold.</p>')
    distance_header = ["kind", "feature", "comparator", "value", "threshold", "status", "measured on"]
    distances_html = _table("distances", distance_header, distance_rows,
                            ["stop" if d.exceeded else "" for d in distances])
    rules_html = (_table("span-rules", ["kind", "feature", "rule", "measured", "threshold", "status", "measured on"],
                         rule_rows, ["stop" if r.failed else "" for r in rules]) if rules
                  else '<p id="span-rules">Not checked (statistics from before the span rules).</p>')
    notes_html = "".join(f'<p class="note">{_escape(n)}</p>' for n in notes)
    schema_html = ('<ul id="schema-diff">' + "".join(f"<li>{_escape(c)}</li>" for c in schema_changes) + "</ul>"
                   if schema_changes else '<p id="schema-diff">The inferred schema matches the curated one.</p>')
    written = datetime.datetime.now(datetime.timezone.utc)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Data report: {_escape(span_name)}</title>
<style>{STYLE}</style></head><body>
<h1>Data report</h1>
<p>Newest span: {_escape(span_name)} ({span.num_examples} rows). Training data: {training.num_examples} rows
(train split). Written {written:%Y-%m-%d %H:%M} UTC.</p>
{verdict}
<h2>Findings</h2>
{findings_html}
<h2>Drift, volume and skew measures</h2>
{distances_html}
{notes_html}
<h2>Span rules: time validity and repeated rows</h2>
{rules_html}
<h2>Schema: curated vs inferred from this run's data</h2>
{schema_html}
<h2>Features (training data)</h2>
<table id="features"><thead><tr><th>feature</th><th>values</th><th>missing</th><th>training data</th>
<th>newest span</th><th>chart</th></tr></thead><tbody>{"".join(sections)}</tbody></table>
</body></html>
"""
