"""Monitor benchmark: live quality over N logged predictions and their outcomes, against a floor.

The issue's target: the join and live metrics over 10^6 logged predictions and their
outcomes at most 2x a floor measured in the same run, memory bounded by the window, not by
the log's total size. This script

1. builds (timed on its own, not part of any ratio) a request log of --rows predictions in
   the 24 h window, in requests of 100 rows to serving_default written as the model server
   writes them (data/synthetic_traffic.py): 85% addressed by the label "stable" (version
   2), 10% by "canary" (version 3), 5% by version number; outcomes in CSV files for 80% of
   the rows (10% of them without a fare, so the request's fare decides the label), plus
   0.5% re-delivered (duplicate) and 0.5% unknown ids. Next to it, the same window inside a
   log 3x as large: a day of requests before the window and a day after, in the server's
   rotated files;
2. runs, each phase in its own process (so memory is per phase; imports not timed):
   * **monitor**: `pipeline.monitoring.monitor.run_monitor` on a PipelineConfig pointing at
     the window-only log and the outcomes (capture_spans and monitor_serving_drift off,
     no ML Metadata store beforehand): read outcomes, join, TFMA, report, MLMD record;
   * **floor**: the same records read with `read_records` (ids, predictions, versions, the
     labelled rows' slice features decoded from their tf.Examples) and the same metrics
     computed by `tfma.analyze_raw_data` with the same EvalConfig
     (`live_quality.live_eval_config()`) on that precomputed table, the labels known in
     advance by row position: no outcome file is read, nothing is joined;
   * **monitor on the 3x log**: the same window, in the larger log;
3. checks that the monitor and the floor give the same metrics on every slice (to 1e-6),
   and the 3x run the same as the window-only run, and prints one table: wall seconds
   (CPU seconds beside them: wall time swings when other jobs share the cores), the
   monitor / floor ratio against the target 2.0, and peak RSS of each phase.

    python benchmarks/monitor_benchmark.py                  # 10^6 rows
    python benchmarks/monitor_benchmark.py --rows 1e5 --work /tmp/monitor-bench --keep
    python benchmarks/monitor_benchmark.py --rows 1e5 --profile   # cProfile of the monitor phase
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The window: the 24 h before END (2026-12-01T00:00:00Z); the pass runs an hour after it.
END = 1796083200
WINDOW_HOURS = 24.0
START = END - int(WINDOW_HOURS * 3600)
NOW = END + 3600
ROWS_PER_REQUEST = 100
# (version label the client sent or None, version served, share of requests, AUC of its scores)
TRAFFIC = (("stable", 2, 0.85, 0.90), ("canary", 3, 0.10, 0.85), (None, 2, 0.05, 0.90))
OUTCOME_SHARE, NO_FARE_SHARE, DUPLICATE_SHARE, UNKNOWN_SHARE = 0.8, 0.1, 0.005, 0.005
OUTCOME_FILE_ROWS = 250_000  # the feed drops files of this many lines
LOG_NAME = "requests.tfrecord"
TARGET_RATIO, TOLERANCE = 2.0, 1e-6
GIB = 1024 ** 3


# ---------------------------------------------------------------------------------------
# Phases, each run in a child process: `monitor_benchmark.py _phase NAME WORK [ARG]`.

def _usage() -> tuple[float, int]:
    """(CPU seconds of this process and its finished children, peak RSS in bytes of either)."""
    times = os.times()
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return times.user + times.system + times.children_user + times.children_system, peak * 1024  # KiB on Linux


def _log_traffic(traffic, path: pathlib.Path, frame, seed: int, low: int, high: int, prefix: str, append: bool):
    """Write `frame` as requests of ROWS_PER_REQUEST rows timed in [low, high), split between TRAFFIC's
    versions; returns (frame row of each logged row in log order, request id of each frame row)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = len(frame)
    requests = -(-rows // ROWS_PER_REQUEST)
    request_of_row = np.arange(rows) // ROWS_PER_REQUEST
    group = rng.choice(len(TRAFFIC), size=requests, p=[share for _, _, share, _ in TRAFFIC])
    times = np.sort(rng.integers(low, high, size=requests))
    hexes = rng.bytes(16 * requests).hex()
    # One id per request as a client sends it; the server gives row i the id <id>-<i>.
    ids = [f"{prefix}{hexes[32 * r:32 * r + 32]}-{row % ROWS_PER_REQUEST}" for row, r in
           enumerate(request_of_row.tolist())]
    order = []
    for number, (label, version, _, quality) in enumerate(TRAFFIC):
        # Whole requests of one group, in time order: their rows' 100-row chunks are the requests.
        mine = np.flatnonzero(group[request_of_row] == number)
        if len(mine) == 0:
            continue
        part = frame.iloc[mine]
        traffic.write_request_log(str(path), part, traffic.scored(part, seed + number, quality),
                                  [ids[i] for i in mine], times[request_of_row[mine]], version, label,
                                  ROWS_PER_REQUEST, append=append or bool(order))
        order.append(mine)
    return np.concatenate(order), ids, times[request_of_row]


def _phase_build(work: pathlib.Path, rows: int, seed: int) -> dict:
    import numpy as np

    import tf_environment  # noqa: F401  (before anything imports TensorFlow)
    from data import synthetic
    from data import synthetic_traffic as traffic

    source = synthetic.SourceData.load()
    started = time.perf_counter()
    frame = synthetic.generate(rows, np.random.SeedSequence([seed, 1]), source)
    window_log = work / "log-window" / LOG_NAME
    order, ids, request_time = _log_traffic(traffic, window_log, frame, seed + 10, START, END, "", False)
    print(f"window log: {rows:,} rows in {window_log.stat().st_size / 2**20:.0f} MiB "
          f"({time.perf_counter() - started:.1f} s)", flush=True)

    # Outcomes: 80% of the window's rows (those with a tip), observed minutes to hours after the request.
    rng = np.random.default_rng([seed, 2])
    has_tip = np.flatnonzero(frame["tips"].to_numpy() != "")
    chosen = np.sort(rng.choice(has_tip, size=min(len(has_tip), int(OUTCOME_SHARE * rows)), replace=False))
    observed = request_time[chosen] + np.round(rng.exponential(7200.0, size=len(chosen)))
    tips = frame["tips"].to_numpy()[chosen]
    fare = frame["fare"].to_numpy()[chosen].copy()
    fare[rng.random(len(chosen)) < NO_FARE_SHARE] = ""  # the joiner takes the request's fare
    chosen_ids = [ids[i] for i in chosen.tolist()]
    outcomes = work / "outcomes"
    shuffled = rng.permutation(len(chosen))  # files arrive in any order
    for number, begin in enumerate(range(0, len(chosen), OUTCOME_FILE_ROWS)):
        part = shuffled[begin:begin + OUTCOME_FILE_ROWS]
        traffic.write_outcomes(str(outcomes / f"feed-{number:03d}.csv"), [chosen_ids[i] for i in part],
                               tips[part], fare[part], observed[part])
    extra = max(10, int(DUPLICATE_SHARE * rows))
    again = rng.choice(len(chosen), size=min(extra, len(chosen)), replace=False)
    # Re-delivered a day later with the same values: counted as duplicates, the first one kept.
    traffic.write_outcomes(str(outcomes / "redelivered.csv"), [chosen_ids[i] for i in again], tips[again],
                           fare[again], observed[again] + 86400)
    unknown = max(10, int(UNKNOWN_SHARE * rows))
    traffic.write_outcomes(str(outcomes / "unknown.csv"), [f"unknown-{i}" for i in range(unknown)],
                           np.full(unknown, 2.5), np.full(unknown, 10.0), np.full(unknown, END - 600))
    # The label each logged row gets from the join (-1: none), in log order, for the floor.
    labels = np.full(rows, -1, dtype=np.int8)
    labels[chosen] = traffic.big_tip_labels(tips, frame["fare"].to_numpy()[chosen])  # the request's fare
    np.save(work / "labels.npy", labels[order])
    print(f"outcomes: {len(chosen):,} + {len(again):,} re-delivered + {unknown:,} unknown ids "
          f"({time.perf_counter() - started:.1f} s)", flush=True)

    # The same window inside a log 3x as large: the day before and the day after, in rotated files.
    big = work / "log-3x"
    big.mkdir(parents=True, exist_ok=True)
    inside = big / "requests.20261201T000000Z-000000.tfrecord"
    try:
        os.link(window_log, inside)  # the same bytes, without a second copy on disk
    except OSError:
        shutil.copyfile(window_log, inside)
    for number, (path, low, high) in enumerate((
            (big / "requests.20261130T000000Z-000000.tfrecord", START - 86400, START),
            (big / LOG_NAME, END, END + 86400))):
        other = synthetic.generate(rows, np.random.SeedSequence([seed, 3 + number]), source)
        _log_traffic(traffic, path, other, seed + 20 + 10 * number, low, high, f"d{number}", False)
    size = sum(path.stat().st_size for path in big.iterdir())
    print(f"3x log: {3 * rows:,} rows in {size / 2**20:.0f} MiB ({time.perf_counter() - started:.1f} s)", flush=True)
    return {"rows": rows, "outcomes": len(chosen), "duplicates": len(again), "unknown": unknown,
            "labelled": int((labels >= 0).sum()), "seconds": time.perf_counter() - started}


def _qualities_json(qualities) -> list[dict]:
    return [{"version": q.version, "version_label": q.version_label, "slice": q.slice, "metrics": q.metrics}
            for q in qualities]


def _phase_monitor(work: pathlib.Path, log: str, profile: bool = False) -> dict:
    import tf_environment  # noqa: F401  (before anything imports TensorFlow)
    from pipeline.config import PipelineConfig
    from pipeline.monitoring.monitor import run_monitor

    out = work / f"out-{log}"
    shutil.rmtree(out, ignore_errors=True)
    config = PipelineConfig(output_root=str(out), request_log=str(work / f"log-{log}" / LOG_NAME),
                            outcomes_root=str(work / "outcomes"), monitor_window_hours=WINDOW_HOURS,
                            capture_spans=False, monitor_serving_drift=False)
    cpu, _ = _usage()
    started = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(run_monitor, config, end=END, now=NOW)
        seconds = time.perf_counter() - started
        profiler.dump_stats(str(work / "monitor.prof"))
        for order in ("cumulative", "tottime"):
            print(f"--- cProfile, top 25 by {order} (stats in {work / 'monitor.prof'})", flush=True)
            pstats.Stats(profiler, stream=sys.stdout).sort_stats(order).print_stats(25)
    else:
        result = run_monitor(config, end=END, now=NOW)
        seconds = time.perf_counter() - started
    cpu_after, peak = _usage()
    for line in result.lines:
        print(line, flush=True)
    return {"seconds": seconds, "cpu_seconds": cpu_after - cpu, "peak_rss": peak,
            "logged": sum(v.logged for v in result.versions), "labelled": sum(v.labelled for v in result.versions),
            "qualities": _qualities_json(result.qualities)}


def _phase_floor(work: pathlib.Path) -> dict:
    import numpy as np
    import pandas as pd
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    import tf_environment  # noqa: F401
    from pipeline.evaluation.eval_config import SLICE_FEATURES
    from pipeline.monitoring import live_quality
    from pipeline.monitoring.logged_predictions import LABEL, NO_LABEL, PREDICTION, VERSION, VERSION_LABEL
    from serving.server.request_log import read_records

    labels = np.load(work / "labels.npy")  # known in advance: no outcome file is read, nothing joined
    output = work / "floor-tfma"
    shutil.rmtree(output, ignore_errors=True)
    cpu, _ = _usage()
    started = time.perf_counter()
    columns: dict[str, list] = {name: [] for name in ("request_id", PREDICTION, VERSION, VERSION_LABEL)}
    values: dict[str, list] = {name: [] for name in SLICE_FEATURES}
    label_parts, position = [], 0
    for entry, ids in read_records(str(work / "log-window" / LOG_NAME)):
        if not START <= entry.log_metadata.timestamp_secs < END:
            continue
        request, response = entry.predict_log.request, entry.predict_log.response
        serialized = tf.make_ndarray(request.inputs["examples"]).reshape(-1)
        predictions = tf.make_ndarray(response.outputs["tip_probability"]).reshape(-1)
        version = response.model_spec.version.value or entry.log_metadata.model_spec.version.value
        version_label = request.model_spec.version_label or NO_LABEL
        mine = labels[position:position + len(serialized)]
        position += len(serialized)
        rows = np.flatnonzero(mine >= 0)
        label_parts.append(mine[rows])
        columns[PREDICTION].append(predictions[rows])
        columns["request_id"] += [ids[row] for row in rows.tolist()]
        columns[VERSION] += [version] * len(rows)
        columns[VERSION_LABEL] += [version_label] * len(rows)
        for row in rows.tolist():
            feature = tf.train.Example.FromString(serialized[row]).features.feature
            for name in SLICE_FEATURES:
                kind = feature[name].WhichOneof("kind") if name in feature else None
                cell = getattr(feature[name], kind).value if kind else ()
                values[name].append((cell[0].decode("utf-8", "replace") if kind == "bytes_list" else cell[0])
                                    if cell else None)
    rows = pd.DataFrame({PREDICTION: np.concatenate(columns[PREDICTION]).astype(np.float32),
                         LABEL: np.concatenate(label_parts).astype(np.int64),
                         VERSION: np.asarray(columns[VERSION], dtype=np.int64),
                         VERSION_LABEL: columns[VERSION_LABEL], **values})
    # The monitor's own column selection and fill of missing cells (private, but a few lines; its fill values
    # name the slices), so both hand TFMA the same table.
    table = live_quality._table(rows)
    read_seconds = time.perf_counter() - started
    print(f"read {position:,} logged rows, {len(table):,} labelled, in {read_seconds:.1f} s", flush=True)
    result = tfma.analyze_raw_data(table, live_quality.live_eval_config(), output_path=str(output))
    seconds = time.perf_counter() - started
    cpu_after, peak = _usage()
    qualities = []
    for slice_key, outputs in result.slicing_metrics:
        found = outputs.get("", {}).get("", {})
        # TFMA writes NaN (recall of a slice without positives) as the text "NaN": left out, as the monitor does.
        metrics = {name: float(found[name]["doubleValue"]) for name in live_quality.METRIC_NAMES
                   if "doubleValue" in found.get(name, {}) and not math.isnan(float(found[name]["doubleValue"]))}
        parts = dict(slice_key)
        name = ", ".join(f"{column}={value}" for column, value in slice_key
                         if column not in (VERSION, VERSION_LABEL)) or "overall"
        qualities.append({"version": int(parts[VERSION]), "version_label": parts.get(VERSION_LABEL),
                          "slice": name, "metrics": metrics})
    print(f"TFMA: {len(qualities)} slices in {seconds - read_seconds:.1f} s", flush=True)
    return {"seconds": seconds, "cpu_seconds": cpu_after - cpu, "peak_rss": peak, "read_seconds": read_seconds,
            "logged": position, "labelled": len(table), "qualities": qualities}


def _phase(name: str, work: pathlib.Path, extra: list[str]) -> None:
    if name == "build":
        result = _phase_build(work, int(extra[0]), int(extra[1]))
    elif name == "monitor":
        result = _phase_monitor(work, extra[0], profile=len(extra) > 1 and extra[1] == "profile")
    elif name == "floor":
        result = _phase_floor(work)
    else:
        raise SystemExit(f"unknown phase {name}")
    cpu, peak = _usage()
    result.setdefault("peak_rss", peak)
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------
# The parent: runs the phases, compares, prints the table.

def run_phase(label: str, work: pathlib.Path, name: str, *extra: str) -> dict:
    """One phase in a fresh Python process; its progress lines echoed, its TensorFlow noise in a log file."""
    log_path = work / f"{name}-{'-'.join(extra) or 'all'}.log"
    print(f"--- {label} (log: {log_path})", flush=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, __file__, "_phase", name, str(work), *extra], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=log, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        result = None
        for line in process.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
            else:
                print(f"    {line.rstrip()}", flush=True)
        code = process.wait()
    if code != 0 or result is None:
        tail = log_path.read_text()[-3000:]
        sys.exit(f"{label} failed (exit {code}); the end of {log_path}:\n{tail}")
    result["process_seconds"] = time.perf_counter() - started
    if "peak_rss" in result and "seconds" in result:
        print(f"    {result['seconds']:.1f} s measured ({result['process_seconds']:.1f} s with imports), "
              f"peak RSS {result['peak_rss'] / GIB:.2f} GiB", flush=True)
    return result


def compare(first: list[dict], second: list[dict]) -> tuple[bool, str]:
    """Same slices, every metric within TOLERANCE: (agree, what differs or the largest AUC difference)."""
    def keyed(qualities):
        return {(q["version"], q["version_label"], q["slice"]): q["metrics"] for q in qualities}

    a, b = keyed(first), keyed(second)
    if a.keys() != b.keys():
        only = sorted(map(str, a.keys() ^ b.keys()))[:3]
        return False, f"slices differ ({len(a)} vs {len(b)}; e.g. {', '.join(only)})"
    worst_auc, problems = 0.0, []
    for key, metrics in a.items():
        other = b[key]
        if metrics.keys() != other.keys():
            problems.append(f"{key}: metrics {sorted(metrics.keys() ^ other.keys())} in one only")
            continue
        for name, value in metrics.items():
            if abs(value - other[name]) > TOLERANCE:
                problems.append(f"{key} {name}: {value} vs {other[name]}")
        if "auc" in metrics:
            worst_auc = max(worst_auc, abs(metrics["auc"] - other["auc"]))
    if problems:
        return False, f"{len(problems)} differences, e.g. {problems[0]}"
    return True, f"{len(a)} slices, largest |AUC difference| {worst_auc:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1e6", help="logged predictions in the window (default 1e6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic traffic")
    parser.add_argument("--work", type=pathlib.Path, default=None,
                        help="folder for the log, outcomes and outputs (default: a temporary folder, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--profile", action="store_true",
                        help="run the window-only monitor phase under cProfile and print where its time goes "
                             "(inflates its time: the ratio is then not the benchmark's)")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="also write the results here")
    args = parser.parse_args()
    rows = int(float(args.rows))
    if rows < ROWS_PER_REQUEST:
        parser.error(f"--rows must be at least {ROWS_PER_REQUEST}")
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="monitor-benchmark-"))
    if args.work:
        for stale in ("log-window", "log-3x", "outcomes"):  # a re-run must not append to an old log
            shutil.rmtree(work / stale, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    print(f"monitor benchmark: {rows:,} logged predictions, work folder {work}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    try:
        build = run_phase(f"build the log and outcomes ({rows:,} rows, not timed against anything)", work,
                          "build", str(rows), str(args.seed))
        monitor = run_phase("monitor: run_monitor, window-only log", work, "monitor", "window",
                            *(["profile"] if args.profile else []))
        floor = run_phase("floor: read_records + tfma.analyze_raw_data on the precomputed table", work, "floor")
        big = run_phase("monitor: run_monitor, the same window in a 3x log", work, "monitor", "3x")
    finally:
        if not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    agree, detail = compare(monitor["qualities"], floor["qualities"])
    counts_agree = monitor["labelled"] == floor["labelled"] == build["labelled"] and monitor["logged"] == rows
    same_3x, detail_3x = compare(monitor["qualities"], big["qualities"])
    same_3x = same_3x and big["labelled"] == monitor["labelled"]
    ratio = monitor["seconds"] / floor["seconds"]
    cpu_ratio = monitor["cpu_seconds"] / floor["cpu_seconds"]
    rss_ratio = big["peak_rss"] / monitor["peak_rss"]
    table = [
        ("rows logged in the window", f"{rows:,}"),
        ("rows joined (with an outcome)", f"{monitor['labelled']:,} (floor {floor['labelled']:,}, "
                                          f"expected {build['labelled']:,})"),
        ("build (not in the ratio)", f"{build['seconds']:.1f} s"),
        ("monitor s (run_monitor)", f"{monitor['seconds']:.1f} wall, {monitor['cpu_seconds']:.1f} CPU"),
        ("floor s (read + TFMA)", f"{floor['seconds']:.1f} wall, {floor['cpu_seconds']:.1f} CPU "
                                  f"(reading {floor['read_seconds']:.1f})"),
        ("ratio monitor/floor", f"{ratio:.2f} wall, {cpu_ratio:.2f} CPU"),
        ("target", f"<= {TARGET_RATIO:.1f}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}"
                   + (" (profiled: ratio inflated)" if args.profile else "")),
        ("peak RSS monitor/floor", f"{monitor['peak_rss'] / GIB:.2f} / {floor['peak_rss'] / GIB:.2f} GiB"),
        ("peak RSS window-only/3x log", f"{monitor['peak_rss'] / GIB:.2f} / {big['peak_rss'] / GIB:.2f} GiB "
                                        f"(ratio {rss_ratio:.2f}); 3x log pass {big['seconds']:.1f} s"),
        ("3x log gives the same metrics", f"{'yes' if same_3x else 'no'} ({detail_3x})"),
    ]
    width = max(len(name) for name, _ in table)
    print(f"\n{'measure':<{width}}  value\n{'-' * width}  {'-' * 60}")
    for name, value in table:
        print(f"{name:<{width}}  {value}")
    # The verdict on a line of its own, as the e2e test and a reader look for it.
    print(f"metrics agree: {'yes' if agree and counts_agree else 'no'} (monitor vs floor: {detail}"
          + ("" if counts_agree else "; joined row counts differ") + ")")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {"rows": rows, "monitor": monitor, "floor": floor, "monitor_3x": big, "build": build,
                   "ratio_wall": ratio, "ratio_cpu": cpu_ratio, "rss_ratio_3x": rss_ratio, "metrics_agree": agree,
                   "load_average_1min": os.getloadavg()[0]}
        for part in ("monitor", "floor", "monitor_3x"):
            summary[part] = {k: v for k, v in summary[part].items() if k != "qualities"}
        args.json.write_text(json.dumps(summary, indent=2))
    if not (agree and counts_agree and same_3x):
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "_phase":
        _phase(sys.argv[2], pathlib.Path(sys.argv[3]), sys.argv[4:])
    else:
        main()
