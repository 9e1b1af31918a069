"""Scaling benchmark: how each pipeline stage's time and memory grow with rows, against the library floor.

For each size (default 10^4, 10^5, 10^6 rows) it writes one synthetic span with
`data.synthetic` and, in the same run:

* the floor: in one process, `tfdv.generate_statistics_from_csv` and
  `tft_beam.AnalyzeAndTransformDataset(models.preprocessing.preprocessing_fn)` on the same
  CSV, the transformed rows written as gzipped tf.Examples like Transform does
  (in-memory DirectRunner, imports not timed);
* the whole pipeline (`taxi-pipeline run`, from scratch, no cache) with each Beam profile,
  Trainer at a fixed step count so its time does not depend on rows;
* the Evaluator's floor on that run's output (`benchmarks/evaluator_floor.py`, its own
  process): the candidate called in batches of 10,000 over the eval split Evaluator read,
  the EvalConfig's metrics on its slices with numpy, checked equal to what Evaluator
  wrote (1e-6); Evaluator / floor and both exponents are reported.

It prints per stage the wall time (as the runner reports it), rows/s and the peak memory
(RSS summed over the run's whole process tree, Beam workers included, sampled every
0.2 s), then the scaling exponent of time against rows (log-log slope between sizes, and
fitted over all of them), and the pipeline / floor ratios of the data stages. Results go
to a JSON file (rewritten after every measurement, so an interrupted run keeps what it
measured) and a PNG plot of time against rows per stage.

    python benchmarks/scaling_benchmark.py                       # 1e4,1e5,1e6 x in_memory,multi_processing
    python benchmarks/scaling_benchmark.py --sizes 1e4,1e5 --profiles in_memory
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The data stages the targets are about, as LocalDagRunner names them: every node the
# pipeline runs on the data before and including Transform.
DATA_STAGES = ("CsvCheck", "ImportSchemaGen", "CsvExampleGen", "SpanStatisticsGen", "StatisticsGen",
               "previous_span_resolver", "DriftSkewCheck", "ExampleValidator", "InferredSchemaGen",
               "DataReportGen", "DataGate", "Transform")
# The ones that take time at any size (the rest read or write a few small files).
HEAVY_STAGES = ("CsvExampleGen", "SpanStatisticsGen", "StatisticsGen", "Transform")
MODEL_STAGES = ("Trainer", "Evaluator")
FLOOR_STAGES = ("floor_statistics", "floor_transform")
# Which floor each pipeline stage is compared with.
FLOOR_OF = {"StatisticsGen": "floor_statistics", "SpanStatisticsGen": "floor_statistics",
            "Transform": "floor_transform"}
STEP_START = re.compile(r"^\[\d+/\d+\] (\S+) \.\.\.$")
STEP_END = re.compile(r"^\[\d+/\d+\] (\S+) (done|cached) in ([\d.]+) s$")
OVERALL_AUC = re.compile(r"^\s*overall\s+AUC ([\d.]+)")
TARGET_EXPONENT, TARGET_FLOOR_RATIO, MEMORY_LIMIT_GIB = 1.1, 2.0, 24.0
GIB = 1024 ** 3


class TreeMonitor(threading.Thread):
    """Samples a process and all its descendants: peak RSS and CPU seconds per stage.

    CPU seconds (user + system, Beam workers included) barely move when other jobs share
    the cores, unlike wall time; the report gives both.
    """

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        import psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.stage = "(start-up)"
        self.peaks: dict[str, int] = {}
        self.cpu: dict[str, float] = {}
        self.peak = self.last = 0
        self._seen_cpu: dict[tuple[int, float], float] = {}  # (pid, create time) -> CPU seconds so far
        self._stop_event = threading.Event()

    def _sample(self) -> tuple[int, float]:
        import psutil
        rss, cpu = 0, 0.0
        try:
            processes = [self.root] + self.root.children(recursive=True)
        except psutil.Error:
            return 0, 0.0
        for process in processes:
            try:
                with process.oneshot():
                    rss += process.memory_info().rss
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
            except psutil.Error:
                continue  # a worker that just ended
            total = times.user + times.system
            cpu += total - self._seen_cpu.get(key, 0.0)
            self._seen_cpu[key] = total
        return rss, cpu

    def run(self) -> None:
        while not self._stop_event.is_set():
            stage = self.stage
            rss, cpu = self._sample()
            self.peaks[stage] = max(self.peaks.get(stage, 0), rss)
            self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu
            self.peak = max(self.peak, rss)
            self.last = rss
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(command: list[str], log_path: pathlib.Path, label: str) -> dict:
    """Run `command`, echo its progress lines, and return stage times, peak memory and AUC."""
    print(f"--- {label}: {' '.join(command)}\n    log: {log_path}", flush=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        memory = TreeMonitor(process.pid)
        memory.start()
        stages: dict[str, float] = {}
        auc = None
        for line in process.stdout:
            log.write(line)
            text = line.strip()
            if (match := STEP_START.match(text)):
                memory.stage = match.group(1)
                print(f"    {text}", flush=True)
            elif (match := STEP_END.match(text)):
                stages[match.group(1)] = float(match.group(3))
                # A stage shorter than the sampling interval gets the memory in use around it.
                memory.peaks.setdefault(match.group(1), memory.last)
                memory.stage = "(between stages)"
                print(f"    {text}", flush=True)
            elif (match := OVERALL_AUC.match(line)):
                auc = float(match.group(1))
        code = process.wait()
        memory.stop()
    seconds = time.monotonic() - started
    if code != 0:
        sys.exit(f"{label} failed (exit {code}); see {log_path}")
    print(f"    {seconds:.1f} s wall, peak memory {memory.peak / GIB:.2f} GiB" +
          (f", overall AUC {auc:.4f}" if auc is not None else ""), flush=True)
    return {"wall_s": seconds, "stages": stages, "peak_gib": memory.peak / GIB, "auc": auc,
            "stage_peak_gib": {name: value / GIB for name, value in memory.peaks.items()},
            "stage_cpu_s": memory.cpu, "cpu_s": sum(memory.cpu.values()),
            # Other jobs on the machine inflate wall times; this says how busy it was.
            "load_average_1min": os.getloadavg()[0]}


def measure_evaluator_floor(output_root: pathlib.Path, work: pathlib.Path, label: str) -> dict:
    """benchmarks/evaluator_floor.py on a finished run's output, in its own process (imports not timed)."""
    json_path, log_path = work / f"evaluator-floor-{label}.json", work / f"evaluator-floor-{label}.log"
    command = [sys.executable, str(REPO / "benchmarks" / "evaluator_floor.py"), "--output-root", str(output_root),
               "--json", str(json_path)]
    print(f"--- Evaluator floor, {label}: {' '.join(command)}\n    log: {log_path}", flush=True)
    json_path.unlink(missing_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
        log.write(process.stdout)
    for line in process.stdout.splitlines():
        if line.startswith(("floor:", "metrics agree:", "  ")):
            print(f"    {line}", flush=True)
    # Exit 2 = measured but the metrics disagree: recorded as such, not dropped.
    if process.returncode not in (0, 2) or not json_path.exists():
        sys.exit(f"Evaluator floor failed (exit {process.returncode}); see {log_path}")
    measured = json.loads(json_path.read_text())
    return {"wall_s": measured["wall_s"]["total"], "cpu_s": measured["cpu_s"]["total"],
            "phases_wall_s": measured["wall_s"], "phases_cpu_s": measured["cpu_s"],
            "examples": measured["examples"], "slices": measured["slices"], "models": measured["models"],
            "batch_size": measured["batch_size"], "agree": measured["comparison"]["agree"],
            "largest_difference": measured["comparison"]["largest_difference"],
            "load_average_1min": os.getloadavg()[0]}


# ---------------------------------------------------------------------------------------
# The floor: the same statistics and transform done by the libraries directly.

def _floor(csv_path: str, work: pathlib.Path) -> None:
    """Runs in a child process; prints progress lines in the runner's format."""
    import apache_beam as beam
    import tensorflow_data_validation as tfdv
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder
    from tfx_bsl.public import tfxio

    import tf_environment  # noqa: F401  (before anything imports TensorFlow)
    from models.preprocessing import preprocessing_fn

    # The pipeline's in_memory profile: one process, no worker start-up.
    options = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    work.mkdir(parents=True, exist_ok=True)

    print("[1/2] floor_statistics ...", flush=True)
    started = time.monotonic()
    tfdv.generate_statistics_from_csv(csv_path, output_path=str(work / "stats.tfrecord"),
                                      pipeline_options=PipelineOptions(options))
    print(f"[1/2] floor_statistics done in {time.monotonic() - started:.2f} s", flush=True)

    print("[2/2] floor_transform ...", flush=True)
    started = time.monotonic()
    schema = tfdv.load_schema_text(str(REPO / "schema" / "schema.pbtxt"))
    header = pathlib.Path(csv_path).open().readline().strip().split(",")
    source = tfxio.CsvTFXIO(csv_path, column_names=header, schema=schema, skip_header_lines=1,
                            telemetry_descriptors=["scaling_benchmark"])
    with beam.Pipeline(options=PipelineOptions(options)) as pipeline:
        with tft_beam.Context(temp_dir=str(work / "tft_tmp"), force_tf_compat_v1=True):
            raw = pipeline | "ReadCsv" >> source.BeamSource()
            (transformed, transformed_metadata), transform_fn = (
                (raw, source.TensorAdapterConfig())
                | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=True))
            _ = transform_fn | tft_beam.WriteTransformFn(str(work / "transform_fn"))

            def encode(batch_and_unary, transformed_schema):
                return RecordBatchToExamplesEncoder(transformed_schema).encode(batch_and_unary[0])

            # Written like Transform's transformed_examples: gzipped TFRecords of tf.Example.
            _ = (transformed
                 | "Encode" >> beam.FlatMap(encode, beam.pvalue.AsSingleton(
                     transformed_metadata.deferred_metadata | beam.Map(lambda metadata: metadata.schema)))
                 | "Write" >> beam.io.WriteToTFRecord(str(work / "transformed" / "part"), file_name_suffix=".gz"))
    print(f"[2/2] floor_transform done in {time.monotonic() - started:.2f} s", flush=True)


# ---------------------------------------------------------------------------------------
# Summaries.

def exponents(points: list[tuple[int, float]]) -> dict[str, float]:
    """Log-log slopes of time against rows between consecutive sizes, and fitted over all."""
    points = sorted((rows, seconds) for rows, seconds in points if seconds > 0)
    result = {}
    for (n1, t1), (n2, t2) in zip(points, points[1:]):
        result[f"{n1:g}->{n2:g}"] = math.log(t2 / t1) / math.log(n2 / n1)
    if len(points) >= 3:
        xs = [math.log(n) for n, _ in points]
        ys = [math.log(t) for _, t in points]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        result["fit"] = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
                         / sum((x - mean_x) ** 2 for x in xs))
    return result


METRICS = {"wall": "wall time", "cpu": "CPU time (user + system, all processes)"}


def stage_times(run: dict, metric: str = "wall", names=DATA_STAGES + MODEL_STAGES) -> dict[str, float]:
    """Seconds per stage (wall as the runner reports it, or CPU as sampled), plus the data stages' sum."""
    source = run["stages"] if metric == "wall" else run.get("stage_cpu_s", {})
    times = {name: source.get(name, 0.0) for name in names}
    if names != FLOOR_STAGES:
        times["data stages"] = sum(source.get(name, 0.0) for name in DATA_STAGES)
    return times


def summarise(results: dict) -> dict:
    """Exponents per profile and stage, and pipeline / floor ratios per size and profile, for wall and CPU."""
    summary: dict = {"exponents": {}, "floor_ratios": {}}
    for metric in METRICS:
        exps, ratios_out = {}, {}
        floors = {int(rows): stage_times(entry, metric, FLOOR_STAGES) for rows, entry in results["floor"].items()}
        for profile, runs in results["pipeline"].items():
            per_stage: dict[str, list] = {}
            for rows, run in runs.items():
                for name, seconds in stage_times(run, metric).items():
                    per_stage.setdefault(name, []).append((int(rows), seconds))
            exps[profile] = {name: exponents(points) for name, points in per_stage.items()}
            for rows, run in runs.items():
                floor = floors.get(int(rows))
                if not floor or not all(floor.values()):
                    continue
                times = stage_times(run, metric)
                ratios = {"data stages / floor": times["data stages"] / sum(floor.values())}
                for stage, floor_stage in FLOOR_OF.items():
                    ratios[f"{stage} / {floor_stage}"] = times[stage] / floor[floor_stage]
                ratios_out.setdefault(profile, {})[str(rows)] = ratios
        floor_points: dict[str, list] = {}
        for rows, floor in floors.items():
            for name, seconds in floor.items():
                floor_points.setdefault(name, []).append((rows, seconds))
        exps["floor"] = {name: exponents(points) for name, points in floor_points.items()}
        summary["exponents"][metric], summary["floor_ratios"][metric] = exps, ratios_out
    summary["evaluator_floor"] = evaluator_floor_summary(results)
    return summary


def evaluator_floor_summary(results: dict) -> dict:
    """Per profile and size: Evaluator and its floor (wall and CPU), their ratio, and both exponents."""
    out: dict = {}
    for profile, per_size in results.get("evaluator_floor", {}).items():
        runs = results["pipeline"].get(profile, {})
        rows_out, points = {}, {(metric, who): [] for metric in METRICS for who in ("Evaluator", "floor")}
        for rows, floor in _by_rows(per_size):
            run = runs.get(rows)
            if run is None:
                continue
            entry = {"agree": floor["agree"], "largest_difference": floor["largest_difference"]}
            for metric in METRICS:
                evaluator = stage_times(run, metric, MODEL_STAGES)["Evaluator"]
                floor_s = floor["wall_s" if metric == "wall" else "cpu_s"]
                entry[metric] = {"Evaluator": evaluator, "floor": floor_s,
                                 "ratio": evaluator / floor_s if floor_s else float("nan")}
                points[(metric, "Evaluator")].append((int(rows), evaluator))
                points[(metric, "floor")].append((int(rows), floor_s))
            rows_out[rows] = entry
        out[profile] = {"sizes": rows_out,
                        "exponents": {metric: {who: exponents(points[(metric, who)]) for who in ("Evaluator", "floor")}
                                      for metric in METRICS}}
    return out


def _by_rows(mapping: dict) -> list:
    return sorted(mapping.items(), key=lambda item: int(item[0]))


def print_report(results: dict, summary: dict) -> None:
    nan = float("nan")
    print("\n=== Per stage: wall time, CPU time, rows/s (wall), peak memory (RSS of the whole process tree) ===")
    print(f"{'profile':17s} {'rows':>9s} {'stage':22s} {'wall s':>8s} {'CPU s':>8s} {'rows/s':>10s} {'peak GiB':>9s}")
    for profile, runs in results["pipeline"].items():
        for rows, run in _by_rows(runs):
            n, cpu = int(rows), stage_times(run, "cpu")
            for name, seconds in stage_times(run).items():
                peak = run["stage_peak_gib"].get(name, nan) if name != "data stages" else nan
                if run.get("stopped_before") and name not in run["stages"] and name != "data stages":
                    print(f"{profile:17s} {n:>9,d} {name:22s} (not measured: {run['stopped_before']})")
                    continue
                print(f"{profile:17s} {n:>9,d} {name:22s} {seconds:8.1f} {cpu[name]:8.1f} "
                      f"{n / seconds if seconds else 0:>10,.0f} {peak:9.2f}")
            auc = run["auc"] if run["auc"] is not None else nan
            load = run.get("load_average_1min", nan)
            print(f"{profile:17s} {n:>9,d} {'whole run':22s} {run['wall_s']:8.1f} {run.get('cpu_s', nan):8.1f} "
                  f"{'':>10s} {run['peak_gib']:9.2f}   AUC {auc:.4f}, load average {load:.1f}")
    for rows, floor in _by_rows(results["floor"]):
        n, cpu = int(rows), stage_times(floor, "cpu", FLOOR_STAGES)
        for name, seconds in stage_times(floor, "wall", FLOOR_STAGES).items():
            print(f"{'floor (1 process)':17s} {n:>9,d} {name:22s} {seconds:8.1f} {cpu[name]:8.1f} "
                  f"{n / seconds:>10,.0f} {floor['stage_peak_gib'].get(name, nan):9.2f}")

    for metric, label in METRICS.items():
        print(f"\n=== Scaling exponent of {label} against rows (1.0 = linear) ===")
        for profile, stages in summary["exponents"][metric].items():
            for name, slopes in stages.items():
                if slopes:
                    print(f"{profile:17s} {name:22s} " + ", ".join(f"{k}: {v:.2f}" for k, v in slopes.items()))
        print(f"\n=== Pipeline / floor, {label} (same CSV, same run) ===")
        for profile, per_size in summary["floor_ratios"][metric].items():
            for rows, ratios in _by_rows(per_size):
                print(f"{profile:17s} {int(rows):>9,d} " + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))

    print_evaluator_floor(summary.get("evaluator_floor", {}))

    checks = []
    largest = max((int(rows) for runs in results["pipeline"].values() for rows in runs), default=0)
    if largest >= 10 ** 6:
        for profile, runs in results["pipeline"].items():
            for metric in METRICS:
                slope = summary["exponents"][metric].get(profile, {}).get("data stages", {})
                slope = next((value for key, value in slope.items() if key.endswith(f"->{largest:g}")), None)
                if slope is not None:
                    checks.append(f"{profile}: data-stage exponent ({metric}) up to {largest:g} = {slope:.2f} "
                                  f"(target <= {TARGET_EXPONENT}: {'met' if slope <= TARGET_EXPONENT else 'NOT met'})")
            if str(largest) not in runs:
                continue
            peak = runs[str(largest)]["peak_gib"]
            checks.append(f"{profile}: peak memory at {largest:,} rows = {peak:.2f} GiB (target <= "
                          f"{MEMORY_LIMIT_GIB:g}: {'met' if peak <= MEMORY_LIMIT_GIB else 'NOT met'})")
            for metric in METRICS:
                ratio = summary["floor_ratios"][metric].get(profile, {}).get(str(largest), {}).get(
                    "data stages / floor")
                if ratio is not None:
                    checks.append(f"{profile}: data stages / floor ({metric}) at {largest:,} rows = {ratio:.2f} "
                                  f"(target <= {TARGET_FLOOR_RATIO:g}: "
                                  f"{'met' if ratio <= TARGET_FLOOR_RATIO else 'NOT met'})")
    if checks:
        print("\n=== Targets ===\n" + "\n".join(checks))


def print_evaluator_floor(per_profile: dict) -> None:
    if not per_profile:
        return
    print("\n=== Evaluator against its floor (the run's own output: its models and eval split; floor = one process, "
          "batched model calls, numpy metrics, imports not timed) ===")
    print(f"{'profile':17s} {'rows':>9s} {'Evaluator s':>12s} {'CPU s':>8s} {'floor s':>8s} {'CPU s':>8s} "
          f"{'ratio':>6s} {'CPU ratio':>9s}  metrics agree (largest difference)")
    for profile, entry in per_profile.items():
        for rows, size in _by_rows(entry["sizes"]):
            wall, cpu = size["wall"], size["cpu"]
            print(f"{profile:17s} {int(rows):>9,d} {wall['Evaluator']:12.1f} {cpu['Evaluator']:8.1f} "
                  f"{wall['floor']:8.2f} {cpu['floor']:8.2f} {wall['ratio']:6.1f} {cpu['ratio']:9.1f}  "
                  f"{'yes' if size['agree'] else 'NO'} ({size['largest_difference']:.2g})")
        for metric in METRICS:
            for who, slopes in entry["exponents"][metric].items():
                if slopes:
                    print(f"{profile:17s} exponent ({metric}) {who:9s} " +
                          ", ".join(f"{k}: {v:.2f}" for k, v in slopes.items()))


def plot(results: dict, path: pathlib.Path) -> None:
    """Time against rows per stage, log-log: wall time left, CPU time right."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(1, 2, figsize=(14, 6), sharey=True)
    styles = {"in_memory": "-", "multi_processing": "--"}
    for axes, metric in zip(panels, METRICS):
        for profile, runs in results["pipeline"].items():
            sizes = sorted(int(rows) for rows in runs)
            for index, name in enumerate(HEAVY_STAGES + MODEL_STAGES + ("data stages",)):
                # A stage a stopped run never reached has no point (not a zero).
                points = [(n, stage_times(runs[str(n)], metric)[name]) for n in sizes]
                points = [(n, value) for n, value in points if value > 0]
                axes.plot([n for n, _ in points], [value for _, value in points], styles.get(profile, ":"), marker="o",
                          color=f"C{index}", linewidth=2.5 if name == "data stages" else 1.2,
                          label=f"{name} ({profile})")
        for profile, per_size in results.get("evaluator_floor", {}).items():
            sizes = sorted(int(rows) for rows in per_size)
            axes.plot(sizes, [per_size[str(n)]["wall_s" if metric == "wall" else "cpu_s"] for n in sizes], ":",
                      marker="^", color=f"C{len(HEAVY_STAGES) + 1}", linewidth=1.2,
                      label=f"Evaluator floor ({profile} run's output, 1 process)")
        floor_sizes = sorted(int(rows) for rows in results["floor"])
        for index, name in enumerate(FLOOR_STAGES + ("floor total",)):
            times = [stage_times(results["floor"][str(n)], metric, FLOOR_STAGES) for n in floor_sizes]
            values = [sum(t.values()) if name == "floor total" else t[name] for t in times]
            axes.plot(floor_sizes, values, ":", marker="s", color=("black", "grey", "black")[index],
                      linewidth=2.5 if name == "floor total" else 1.2, label=f"{name} (tfdv / tft_beam, 1 process)")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("rows")
        axes.set_ylabel(f"{METRICS[metric]} (s)")
        axes.set_title(f"{metric} time per stage against rows (2 cores)")
        axes.grid(True, which="both", alpha=0.3)
    panels[0].legend(fontsize=6.5, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e4,1e5,1e6",
                        help="rows per run, comma-separated (default 1e4,1e5,1e6)")
    parser.add_argument("--profiles", default="in_memory,multi_processing",
                        help="Beam profiles to run the pipeline with (default in_memory,multi_processing)")
    parser.add_argument("--skip", default="", metavar="PROFILE:ROWS,...",
                        help="pipeline runs to leave out, e.g. multi_processing:1e4")
    parser.add_argument("--workers", type=int, default=0,
                        help="beam_workers for multi_processing (default 0: one per core)")
    parser.add_argument("--train-steps", type=int, default=1000, help="Trainer steps, fixed for every size")
    parser.add_argument("--eval-steps", type=int, default=150, help="Trainer eval steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic spans")
    parser.add_argument("--work", type=pathlib.Path, default=None,
                        help="folder for spans, outputs and logs (default: a temporary folder, removed at the end)")
    parser.add_argument("--json", type=pathlib.Path, default=REPO / "benchmarks" / "results" / "scaling.json",
                        help="where to write the results")
    parser.add_argument("--plot", type=pathlib.Path, default=REPO / "benchmarks" / "results" / "scaling.png",
                        help="where to write the plot (time against rows per stage)")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (no ratios)")
    parser.add_argument("--no-evaluator-floor", action="store_true",
                        help="skip the Evaluator floor after each pipeline run")
    parser.add_argument("--keep-artifacts", action="store_true",
                        help="keep each run's pipeline artifacts (e.g. to profile its Evaluator afterwards with "
                             "benchmarks/evaluator_floor.py --profile-evaluator)")
    parser.add_argument("--resume", action="store_true",
                        help="add to the results already in --json (e.g. a larger size measured later) instead of "
                             "starting over; ratios stay within one run, exponents may span runs")
    parser.add_argument("--report-only", action="store_true",
                        help="print the report and redraw the plot from an earlier --json file, run nothing")
    parser.add_argument("--floor-only", nargs=2, metavar=("CSV", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_only:
        _floor(args.floor_only[0], pathlib.Path(args.floor_only[1]))
        return
    if args.report_only:
        results = json.loads(args.json.read_text())
        print_report(results, summarise(results))
        plot(results, args.plot)
        print(f"\nPlot: {args.plot}")
        return

    from data import synthetic

    sizes = sorted({int(float(text)) for text in args.sizes.split(",") if text.strip()})
    profiles = [name.strip() for name in args.profiles.split(",") if name.strip()]
    skip = {(name, int(float(rows))) for name, _, rows in
            (item.strip().partition(":") for item in args.skip.split(",") if item.strip())}
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="scaling-benchmark-"))
    work.mkdir(parents=True, exist_ok=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {"settings": {"sizes": sizes, "profiles": profiles, "workers": args.workers,
                                  "train_steps": args.train_steps, "eval_steps": args.eval_steps,
                                  "seed": args.seed, "cpus": os.cpu_count(),
                                  "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())},
                     "generate_s": {}, "floor": {}, "pipeline": {}, "evaluator_floor": {}}
    if args.resume and args.json.exists():
        earlier = json.loads(args.json.read_text())
        results.update({key: earlier.get(key, {}) for key in ("generate_s", "floor", "pipeline", "evaluator_floor")})
        results["settings"]["earlier_runs"] = earlier["settings"].get("earlier_runs", []) + [earlier["settings"]]

    def save() -> None:
        results["summary"] = summarise(results)
        args.json.write_text(json.dumps(results, indent=1))

    try:
        for rows in sizes:
            data_root = work / f"rows-{rows}"
            print(f"\n##### {rows:,} rows", flush=True)
            started = time.monotonic()
            shutil.rmtree(data_root, ignore_errors=True)
            csv_path = synthetic.write_spans(data_root, rows, seed=args.seed, progress=sys.stdout)[0]
            results["generate_s"][str(rows)] = time.monotonic() - started
            if not args.no_floor:
                shutil.rmtree(work / f"floor-{rows}", ignore_errors=True)  # tft_beam will not overwrite its output
                floor = run_measured([sys.executable, __file__, "--floor-only", str(csv_path),
                                      str(work / f"floor-{rows}")], work / f"floor-{rows}.log",
                                     f"floor, {rows:,} rows")
                results["floor"][str(rows)] = floor
                save()
            for profile in profiles:
                if (profile, rows) in skip:
                    continue
                output_root = work / f"out-{profile}-{rows}"
                shutil.rmtree(output_root, ignore_errors=True)
                command = [sys.executable, "-m", "pipeline", "run",
                           "--set", f"data_root={data_root}", "--set", f"output_root={output_root}",
                           "--set", f"train_steps={args.train_steps}", "--set", f"eval_steps={args.eval_steps}",
                           "--set", f"beam_profile={profile}", "--set", f"beam_workers={args.workers}",
                           "--set", "enable_cache=false"]
                run = run_measured(command, work / f"pipeline-{profile}-{rows}.log",
                                   f"pipeline, {profile}, {rows:,} rows")
                results["pipeline"].setdefault(profile, {})[str(rows)] = run
                save()
                if not args.no_evaluator_floor:
                    # On this run's own output, before its artifacts go.
                    results["evaluator_floor"].setdefault(profile, {})[str(rows)] = measure_evaluator_floor(
                        output_root, work, f"{profile}-{rows}")
                    save()
                if not args.keep_artifacts:
                    # Artifacts of a finished size are not needed again; free the disk.
                    shutil.rmtree(output_root / "pipeline", ignore_errors=True)
    finally:
        if results["pipeline"] or results["floor"]:
            save()
            print_report(results, results["summary"])
            plot(results, args.plot)
            print(f"\nResults: {args.json}\nPlot: {args.plot}")
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
