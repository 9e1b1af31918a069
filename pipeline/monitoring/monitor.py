"""One monitoring pass: request log + outcomes -> live quality, serving drift, report, captured span, decision.

    taxi-pipeline monitor [--trigger] [--hours H] [--end TIME]

Nothing is written until every input has been read: a bad outcome file stops the pass
before any report, span or ML Metadata record exists.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import tempfile
import time

import tensorflow as tf

from pipeline import artifacts, metadata
from pipeline.config import PipelineConfig
from pipeline.evaluation.eval_config import SLICE_FEATURES
from pipeline.monitoring import (
    capture,
    live_quality,
    monitor_record,
    monitor_report,
    pipeline_status,
    serving_drift,
    triggers,
)
from pipeline.monitoring.logged_predictions import join_window
from pipeline.monitoring.outcomes import read_outcomes


@dataclasses.dataclass
class MonitorResult:
    decision: triggers.Decision
    versions: list[monitor_record.VersionQuality]
    qualities: list[live_quality.SliceQuality]
    report_json: pathlib.Path
    report_html: pathlib.Path
    captured_span: pathlib.Path | None
    captured_rows: int
    execution_id: int
    lines: list[str]  # what the CLI prints
    serving_drift: serving_drift.ServingDrift | None  # None when monitor_serving_drift is off


@dataclasses.dataclass
class _Served:
    """What ML Metadata knows of a pushed version."""
    pushed_id: int | None = None
    offline_auc: float | None = None
    training_statistics: str | None = None  # path of the train split's FeatureStats.pb
    schema_uri: str | None = None


def _served_versions(config: PipelineConfig, versions: set[int]) -> dict[int, _Served]:
    from pipeline.evaluation.outcome import metrics_table
    from pipeline.governance import lineage

    known = {version: _Served() for version in versions}
    if not metadata.store_exists(config.metadata_path):
        return known
    store = metadata.open_store(config.metadata_path)
    for version in versions:
        try:
            trace = lineage.trace(store, str(version))
        except lineage.LineageError:
            continue  # served, but not pushed by this pipeline (or its store was replaced)
        served = known[version]
        served.pushed_id = trace.pushed.id
        for type_name, artifact, node in trace.artifacts:
            if type_name == "ModelEvaluation" and served.offline_auc is None:
                served.offline_auc = metrics_table(artifact.uri).get("overall", {}).get(("auc", False))
            elif type_name == "ExampleStatistics" and node == artifacts.STATISTICS_GEN:
                served.training_statistics = os.path.join(artifact.uri, f"Split-{artifacts.TRAIN_SPLIT}",
                                                          artifacts.STATISTICS_FILE)
            elif type_name == "Schema" and served.schema_uri is None:
                served.schema_uri = artifact.uri
    return known


def _serving_drift(examples_path: str, rows: int, served: dict[int, _Served],
                   config: PipelineConfig) -> serving_drift.ServingDrift:
    """The window's traffic against the training data of the newest version it reached."""
    if not rows:
        return serving_drift.not_measured("no tf.Example request logged in the window")
    known = {v: s.training_statistics for v, s in served.items()
             if s.training_statistics and tf.io.gfile.exists(s.training_statistics)}
    if not known:
        return serving_drift.not_measured(
            f"ML Metadata at {config.metadata_path} holds no training statistics of version(s) "
            f"{', '.join(map(str, sorted(served))) or 'none'}: they were not pushed by this pipeline, "
            "or its store was replaced", rows)
    newest = max(known)
    return serving_drift.measure(examples_path, rows, newest, known[newest], config.schema_path)


def _last_trigger_and_capture(config: PipelineConfig) -> tuple[float | None, float]:
    """(When the last pass fired, where the last captured span's window ended)."""
    if not metadata.store_exists(config.metadata_path):
        return None, 0.0
    passes = monitor_record.passes(metadata.open_store(config.metadata_path), config.pipeline_name)
    fired = [p.started for p in passes if p.verdict == triggers.FIRE]
    captured = [p.window_end for p in passes if p.captured_rows]
    return (max(fired) if fired else None), float(max(captured, default=0))


def _version_summary(version: int, window, qualities, served: _Served,
                     min_examples: int) -> monitor_record.VersionQuality:
    mine = [q for q in qualities if q.version == version and q.version_label is None]
    overall = next((q for q in mine if q.slice == "overall"), None)
    gated = [q for q in mine if q.slice != "overall" and q.gated(min_examples) and "auc" in q.metrics]
    worst = min(gated, key=lambda q: q.metrics["auc"], default=None)
    logged = sum(n for (v, _), n in window.logged.items() if v == version)
    labelled = sum(n for (v, _), n in window.labelled.items() if v == version)
    return monitor_record.VersionQuality(
        version, logged, labelled, labelled / logged if logged else 0.0,
        overall.metrics.get("auc") if overall else None, served.offline_auc,
        worst.slice if worst else "", worst.metrics["auc"] if worst else None)


def run_monitor(config: PipelineConfig, hours: float | None = None, end: float | None = None,
                now: float | None = None) -> MonitorResult:
    """One pass over the requests logged in the `hours` (default monitor_window_hours) before `end` (now)."""
    now = time.time() if now is None else now
    end = now if end is None else end
    start = end - 3600 * (hours or config.monitor_window_hours)
    outcomes = read_outcomes(config.outcomes_dir)  # raises OutcomeError before anything is written
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(end))
    folder = pathlib.Path(config.monitoring_dir, stamp)
    with tempfile.TemporaryDirectory() as scratch:
        examples_path = os.path.join(scratch, "requests.tfrecord")
        window = join_window(config.request_log_path, outcomes, start, end, SLICE_FEATURES,
                             examples_path=examples_path if config.monitor_serving_drift else None)
        versions = sorted({version for version, _ in window.logged})
        served = _served_versions(config, set(versions))
        drift = (_serving_drift(examples_path, sum(window.logged.values()), served, config)
                 if config.monitor_serving_drift else None)
    qualities = live_quality.compute(window.rows, str(folder / "tfma"))
    summaries = [_version_summary(v, window, qualities, served[v], config.min_slice_examples) for v in versions]

    labelled_by_version = collections.Counter()
    for (version, _), count in window.labelled.items():
        labelled_by_version[version] += count
    reasons, notes = triggers.quality_reasons(qualities, {v: s.offline_auc for v, s in served.items()
                                                          if s.offline_auc is not None},
                                              labelled_by_version, config)
    if not window.logged:
        notes.append(f"no request logged in the window ({config.request_log_path})")
    drift_found, drift_notes = triggers.drift_reasons(drift, config)
    reasons += drift_found
    notes += drift_notes
    last_trigger, captured_until = _last_trigger_and_capture(config)

    captured_span, captured_rows = None, 0
    if config.capture_spans:
        captured_span, captured_rows = capture.capture_span(window, config.data_root, max(start, captured_until))
    if config.trigger_min_new_rows and captured_rows >= config.trigger_min_new_rows:
        reasons.append(triggers.Reason("new rows", None, "", float(captured_rows),
                                       f">= trigger_min_new_rows {config.trigger_min_new_rows}"))
    decision = triggers.decide(reasons, notes, None if last_trigger is None else now - last_trigger, config)

    outcome_summary = {"files": outcomes.files, "rows": outcomes.rows, "duplicates": outcomes.duplicates,
                       "conflicting": outcomes.conflicting, "unmatched": window.unmatched_outcomes,
                       "newest_age_seconds": None if outcomes.newest_observed_at is None
                       else now - outcomes.newest_observed_at}
    data = monitor_report.report_data(
        pipeline_name=config.pipeline_name, window=(start, end), now=now, decision=decision, versions=summaries,
        qualities=qualities, outcomes=outcome_summary, skipped=dict(window.skipped),
        drift=None if drift is None else drift.as_dict(),
        captured={"span": str(captured_span), "rows": captured_rows} if captured_span else None,
        min_examples=config.min_slice_examples)
    report_json, report_html = monitor_report.write_report(folder, data, config.live_min_slice_auc)
    monitor_report.write_prometheus(pathlib.Path(config.monitoring_dir, monitor_report.PROMETHEUS_FILE), data,
                                    config.min_slice_examples)
    execution_id = monitor_record.record_pass(
        config.metadata_path, config.pipeline_name, window_start=start, window_end=end, verdict=decision.verdict,
        reasons=[str(r) for r in decision.reasons], notes=decision.notes, report_uri=str(folder),
        versions=summaries, captured=(str(captured_span), captured_rows) if captured_span else None,
        pushed_ids={v: s.pushed_id for v, s in served.items() if s.pushed_id is not None})
    # Cheap, and keeps the run series fresh between runs (and right after a store is restored).
    pipeline_status.write_status_safely(config)
    lines = _lines(window, summaries, outcome_summary, drift, decision, captured_span, captured_rows, report_html)
    return MonitorResult(decision, summaries, qualities, report_json, report_html, captured_span, captured_rows,
                         execution_id, lines, drift)


def _lines(window, summaries, outcomes: dict, drift, decision, captured_span, captured_rows,
           report_html) -> list[str]:
    lines = [f"window: {sum(window.logged.values())} logged predictions, {sum(window.labelled.values())} with an "
             f"outcome; {outcomes['rows']} outcome rows in {outcomes['files']} files, {outcomes['duplicates']} "
             f"duplicate ids counted once, {outcomes['unmatched']} matching no request of the window"]
    for item in summaries:
        auc = "n/a" if item.auc is None else f"{item.auc:.4f}"
        offline = "" if item.offline_auc is None else f" (offline {item.offline_auc:.4f})"
        worst = (f"; worst gated slice {item.worst_slice} AUC {item.worst_slice_auc:.4f}"
                 if item.worst_slice_auc is not None else "")
        lines.append(f"version {item.version}: live AUC {auc}{offline}, coverage {item.coverage:.1%} "
                     f"({item.labelled}/{item.logged}){worst}")
    for reason, count in window.skipped.items():
        lines.append(f"skipped {count} logged records: {reason}")
    if drift is not None:
        lines.append(drift.summary())
    lines.append(f"captured span: {captured_span} ({captured_rows} rows)" if captured_span
                 else "captured span: none (no new labelled row with a tip)")
    lines.append(decision.summary())
    lines.append(f"report: {report_html}")
    return lines
