"""Model card and evaluation report of a pushed version: static Markdown and HTML files.

Everything comes from ML Metadata and the artifacts it points at (lineage, TFMA metrics,
statistics), so a card can be written for any version at any time. The plots are inline
SVG: the files open offline, with no notebook, CDN or plotting library.
"""
from __future__ import annotations

import html
import json
import os

import tensorflow_data_validation as tfdv

from models import edge_export
from pipeline import artifacts, metadata
from pipeline.config import PipelineConfig
from pipeline.evaluation import blessing, intervals, outcome
from pipeline.evaluation.eval_config import thresholds_used
from pipeline.governance import lineage
from pipeline.monitoring import monitor_record

LIMITATIONS = (
    "Trained on Chicago taxi trips only; the label is a tip above 20% of the fare as recorded by the meter.",
    "Cash tips are mostly not recorded, so cash trips are almost all labelled 'no big tip': the model learns "
    "the payment type first, and its AUC within one payment type is far lower than overall.",
    "Slices with fewer evaluation examples of each class than min_slice_examples are reported but not gated, "
    "and without an interval: with so few of a class the interval would not mean much.",
)


def _first(trace: lineage.Lineage, type_name: str, node_suffix: str = ""):
    found = [a for name, a, node in trace.artifacts if name == type_name and node.endswith(node_suffix)]
    return found[0] if found else None


def _split_counts(statistics) -> dict[str, int]:
    counts = {}
    for split in (artifacts.TRAIN_SPLIT, artifacts.EVAL_SPLIT):
        path = os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb")
        if os.path.exists(path):
            stats = tfdv.load_stats_binary(path)
            counts[split] = int(stats.datasets[0].num_examples) if stats.datasets else 0
    return counts


def _svg_bars(rows: list[tuple[str, float, float | None]], floor: float) -> str:
    """Horizontal bars of AUC per slice, its 95% interval as a whisker, the baseline as a tick, the floor as a line."""
    width, bar_area, height = 760, 420, 22 * len(rows) + 30
    x = lambda value: 300 + bar_area * max(0.0, min(1.0, value))  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12">']
    for i, (name, value, baseline) in enumerate(rows):
        y = 10 + 22 * i
        color = "#c0392b" if value < floor else "#2e86c1"
        parts.append(f'<text x="295" y="{y + 14}" text-anchor="end">{html.escape(name[:45])}</text>')
        parts.append(f'<rect x="300" y="{y}" width="{x(value) - 300:.1f}" height="16" fill="{color}"/>')
        bounds = intervals.interval_of(value)
        end = x(bounds[1]) if bounds else x(value)
        if bounds:
            parts.append(f'<line x1="{x(bounds[0]):.1f}" x2="{end:.1f}" y1="{y + 8}" y2="{y + 8}" stroke="#555" '
                         'stroke-width="2"><title>95% interval</title></line>')
        parts.append(f'<text x="{end + 4:.1f}" y="{y + 13}">{intervals.text(value, digits=3)}</text>')
        if baseline is not None:
            parts.append(f'<line x1="{x(baseline):.1f}" x2="{x(baseline):.1f}" y1="{y - 2}" y2="{y + 18}" '
                         'stroke="black" stroke-width="2"><title>baseline</title></line>')
    parts.append(f'<line x1="{x(floor):.1f}" x2="{x(floor):.1f}" y1="0" y2="{height}" stroke="#c0392b" '
                 'stroke-dasharray="4 3"><title>min_slice_auc</title></line></svg>')
    return "".join(parts)


def _svg_calibration(points: list[tuple[str, float, float]]) -> str:
    """Mean prediction against mean label per slice: on the diagonal when calibrated."""
    size, pad = 320, 40
    scale = lambda v: pad + (size - 2 * pad) * max(0.0, min(1.0, v))  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" font-size="11">',
             f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" stroke="#999"/>',
             f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle">mean label (share of big tips)</text>',
             f'<text x="12" y="{size / 2}" transform="rotate(-90 12 {size / 2})" text-anchor="middle">'
             'mean prediction</text>']
    for name, label, prediction in points:
        parts.append(f'<circle cx="{scale(label):.1f}" cy="{size - scale(prediction):.1f}" r="4" fill="#2e86c1">'
                     f'<title>{html.escape(name)}: label {label:.3f}, prediction {prediction:.3f}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def slice_table(table: dict, config: PipelineConfig) -> list[str]:
    """The card's Markdown table: overall, the gated slices (lowest AUC first), the other sizeable slices,
    then one row for all slices with fewer than min_slice_examples examples, whose metrics are noise."""
    gated = blessing.gated_slices(table, config)

    def metric(name: str, key: str, diff: bool = False) -> str:
        return intervals.text(table.get(name, {}).get((key, diff)), signed=diff, with_interval=False)

    def auc(name: str, diff: bool = False) -> str:
        """With the interval where it means something; 'undefined (one class)' where AUC is undefined."""
        row = table.get(name, {})
        value = row.get(("auc", diff))
        count, mean_label = row.get(("example_count", False)), row.get(("mean_label", False))
        if value is None or name == "overall" or name in gated:
            return intervals.text(value, signed=diff)
        if count is not None and mean_label is not None and intervals.one_class(count, mean_label):
            return "" if diff else "undefined (one class)"
        return intervals.text(value, signed=diff, with_interval=False) + (
            "" if diff else f" ({intervals.too_few(config.min_slice_examples)})")

    others = sorted(name for name in table if name != "overall" and name not in gated)
    counts = {name: table[name].get(("example_count", False), 0) for name in others}
    sizeable = [name for name in others if counts[name] >= config.min_slice_examples]
    tiny = [counts[name] for name in others if counts[name] < config.min_slice_examples]
    lines = ["| slice | examples | AUC [95% interval] | vs baseline [95% interval] | precision | recall | "
             "calibration | gated |", "|---|---|---|---|---|---|---|---|"]
    for name in (["overall"] if "overall" in table else []) + sorted(gated, key=gated.get) + sizeable:
        lines.append(f"| {name} | {metric(name, 'example_count').split('.')[0]} | {auc(name)} | "
                     f"{auc(name, True)} | {metric(name, 'precision')} | {metric(name, 'recall')} | "
                     f"{metric(name, 'calibration')} | {'yes' if name in gated else ''} |")
    if tiny:
        lines.append(f"| {len(tiny)} slices with < {config.min_slice_examples} examples | {min(tiny):.0f} to "
                     f"{max(tiny):.0f} each | not shown: too few examples | | | | | |")
    return lines


def write(config: PipelineConfig, version: str, folder: str | None = None) -> tuple[str, str, str]:
    """Write <folder>/<version>/model_card.md, model_card.html and evaluation_report.html."""
    store = metadata.open_store(config.metadata_path)
    trace = lineage.trace(store, version)
    evaluation = _first(trace, "ModelEvaluation")
    table = outcome.metrics_table(evaluation.uri) if evaluation else {}
    if evaluation:
        config = thresholds_used(evaluation.uri, config)
    decision = blessing.decide(evaluation.uri, table, config) if evaluation else None
    model = _first(trace, "Model")
    hyperparameters_path = os.path.join(model.uri, "Format-Serving", "assets.extra", "hyperparameters.json")
    hyperparameters = json.load(open(hyperparameters_path)) if model and os.path.exists(hyperparameters_path) else {}
    examples = _first(trace, "Examples", "ExampleGen")
    statistics = _first(trace, "ExampleStatistics")
    schema = _first(trace, "Schema")
    gated = blessing.gated_slices(table, config)

    md = [f"# Model card: {config.pipeline_name} version {trace.version}", "",
          "Predicts whether a Chicago taxi trip ends with a tip above 20% of the fare.", "",
          "## Data", ""]
    if examples is not None:
        md.append(f"- Examples: {lineage._describe('Examples', examples)}")
    if statistics is not None:
        md.append(f"- Statistics: {', '.join(f'{k} {v} examples' for k, v in _split_counts(statistics).items())} "
                  f"(`{statistics.uri}`)")
    if schema is not None:
        md.append(f"- Schema: `{schema.uri}` (imported from the curated `schema/schema.pbtxt`)")
    md += ["", "## Hyperparameters", "", "```json", json.dumps(hyperparameters, indent=2, sort_keys=True), "```", "",
           "## Blessing", ""]
    if decision is not None:
        md.append(_decision_text(decision))
        md += [f"- {finding}" for finding in decision.findings[1:]]
    md += ["", "## Metrics (candidate on the evaluation split; change against the baseline model)", ""]
    md += slice_table(table, config)
    md += ["", "## Live quality (served traffic joined with outcomes, `taxi-pipeline monitor`)", ""]
    md += ([f"- {monitor_record.describe_live(artifact)}" for artifact in trace.live[-5:]]
           or ["- not measured yet: no monitoring pass has joined outcomes to this version's predictions"])
    md += ["", "## Edge model (TensorFlow Lite)", ""]
    md += edge_model_lines(edge_export.read_record(os.path.join(model.uri, "Format-Serving")) if model else None)
    md += ["", "## Known limitations", ""] + [f"- {text}" for text in LIMITATIONS]
    md += ["", "Evaluation report with plots: [evaluation_report.html](evaluation_report.html)", ""]

    out = folder or os.path.join(config.output_root, "model_cards")
    target = os.path.join(out, trace.version)
    os.makedirs(target, exist_ok=True)
    md_path = os.path.join(target, "model_card.md")
    with open(md_path, "w") as handle:
        handle.write("\n".join(md))

    bars = [(name, table[name][("auc", False)], table[name].get(("auc", False)) - table[name][("auc", True)]
             if ("auc", True) in table[name] else None)
            for name in ["overall"] + sorted(gated, key=gated.get) if ("auc", False) in table.get(name, {})]
    points = [(name, row[("mean_label", False)], row[("mean_prediction", False)]) for name, row in table.items()
              if ("mean_label", False) in row and ("mean_prediction", False) in row
              and row.get(("example_count", False), 0) >= config.min_slice_examples]
    report_path = os.path.join(target, "evaluation_report.html")
    with open(report_path, "w") as handle:
        handle.write(f"<!doctype html><meta charset='utf-8'><title>Evaluation of {trace.version}</title>"
                     f"<body style='font-family:sans-serif'><h1>Evaluation of {config.pipeline_name} "
                     f"version {html.escape(trace.version)}</h1>"
                     f"<h2>AUC overall and on gated slices</h2><p>Bars: candidate; black ticks: baseline; dashed "
                     f"line: min_slice_auc {config.min_slice_auc}. Red bars are below it.</p>"
                     f"{_svg_bars(bars, config.min_slice_auc)}"
                     f"<p>Grey whiskers: 95% intervals (TFMA's jackknife over the evaluation examples). "
                     f"{html.escape(_change_text(table))}</p>"
                     f"<p>Blessing: {html.escape(_decision_text(decision))}</p>"
                     f"<h2>Calibration by slice</h2><p>Slices with at least {config.min_slice_examples} examples; "
                     f"on the diagonal when predictions are right on average.</p>{_svg_calibration(points)}"
                     f"<p>Evaluation artifact: <code>{html.escape(evaluation.uri if evaluation else '')}</code></p>")
    html_path = os.path.join(target, "model_card.html")
    with open(html_path, "w") as handle:
        handle.write(f"<!doctype html><meta charset='utf-8'><title>Model card {trace.version}</title>"
                     f"<body style='font-family:sans-serif'>{_markdown_to_html(md)}</body>")
    return md_path, html_path, report_path


def _change_text(table: dict) -> str:
    change = table.get("overall", {}).get(("auc", True))
    if change is None:
        return "No baseline: the first push is judged without a change against one."
    return f"Overall AUC change against the baseline: {intervals.text(change, signed=True)}."


def edge_model_lines(record: dict | None) -> list[str]:
    """The card's lines on the TensorFlow Lite copy, from the record Trainer wrote beside it."""
    if record is None:
        return ["- none: this version was exported before models/edge_export.py existed"]
    return [f"- `assets.extra/{record['file']}` in the version directory: the `{record['signature']}` signature "
            f"(one tensor per raw feature), {record['bytes'] / 1024:.1f} KiB",
            f"- Median latency of a single-row call: {record['median_latency_ms']:.3f} ms "
            f"({record['latency_calls']} calls, TensorFlow's Python interpreter on the training machine)",
            "- Runs in a TFLite runtime with the Flex delegate (select TF ops) for: "
            + (", ".join(record["select_tf_ops"]) or "none needed")]


def _decision_text(decision: blessing.Decision | None) -> str:
    if decision is None:
        return "no evaluation recorded"
    return f"{'BLESSED' if decision.blessed else 'NOT BLESSED'}; deciding: {decision.deciding}"


def _markdown_to_html(lines: list[str]) -> str:
    """The small Markdown subset the card uses: headings, lists, tables, code blocks, one link."""
    out, in_code, in_table, in_list = [], False, False, False
    for line in lines:
        if line.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if in_table and not line.startswith("|"):
            out.append("</table>")
            in_table = False
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = [html.escape(cell.strip()) for cell in line.strip("|").split("|")]
            tag = "th" if not in_table else "td"
            out.append(("<table border='1' cellpadding='3' style='border-collapse:collapse'>" if not in_table else "")
                       + "<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>")
            in_table = True
        elif line.startswith("- "):
            out.append(("<ul>" if not in_list else "") + f"<li>{html.escape(line[2:])}</li>")
            in_list = True
        elif "evaluation_report.html" in line:
            out.append("<p><a href='evaluation_report.html'>Evaluation report with plots</a></p>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)
