"""Start-up benchmark: how long the commands people run many times a day take, as whole processes.

Each command is timed from process start to exit, as a user waits for it: `taxi-pipeline
--help`, `taxi-pipeline runs` on an ML Metadata store, and the client command
(`python -m serving.clients CSV --limit 3`) over REST and over gRPC against the model server.
References measured in the same run:

* `python -c pass`: the interpreter alone, the floor of any Python command;
* `python -c "import ml_metadata.metadata_store"`: the one library `runs` cannot do without;
* `python -c "import tensorflow"`: what every command paid before it stopped importing it.

The machine's speed drifts, so the commands run in rounds: each round runs every command
once, in turn, and a ratio is the median of its per-round ratios. Wall and CPU (user +
system of the process, from the kernel) seconds are medians over the rounds.

    python benchmarks/startup_benchmark.py                          # a store of 10 runs it makes; no client
    python benchmarks/startup_benchmark.py --serving_dir out/serving/taxi-tips   # + the client, own server
    python benchmarks/startup_benchmark.py --home out --rest http://127.0.0.1:8501 --rounds 9

--home times `runs` on that output root's store instead of a made one; --rest times the
client against a server already running (REST only); --serving_dir starts the project's
model server (`python -m serving.server`) on that model folder and times both APIs.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tf_environment  # noqa: E402,F401  (the children inherit TensorFlow's settings: no C++ notices)

# isort: split
from ml_metadata.proto import metadata_store_pb2  # noqa: E402

from pipeline import artifacts, metadata  # noqa: E402

PIPELINE_NAME = "taxi-tips"
CSV = REPO / "data" / "taxi" / "span-4" / "data.csv"
NODES = (artifacts.EXAMPLE_GEN, artifacts.STATISTICS_GEN, artifacts.DATA_GATE, artifacts.TRANSFORM,
         artifacts.TRAINER, artifacts.EVALUATOR, artifacts.SERVABILITY_CHECK, artifacts.PUSHER)
REFERENCES = ("python -c pass", "import ml_metadata", "import tensorflow")


def record_runs(metadata_path: str, runs: int) -> None:
    """A store holding `runs` pipeline runs as LocalDagRunner records them: the pipeline context,
    a pipeline_run context per run, a node context per component, and a Pusher that pushed."""
    store = metadata.open_store(metadata_path, metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)

    def contexts(type_name: str, names: list[str]) -> list[metadata_store_pb2.Context]:
        type_id = store.put_context_type(metadata_store_pb2.ContextType(name=type_name))
        made = [metadata_store_pb2.Context(type_id=type_id, name=name) for name in names]
        for context, context_id in zip(made, store.put_contexts(made)):
            context.id = context_id
        return made

    [pipeline] = contexts("pipeline", [PIPELINE_NAME])
    nodes = dict(zip(NODES, contexts("node", [f"{PIPELINE_NAME}.{node}" for node in NODES])))
    pushed_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="PushedModel"))
    output = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT, path=metadata_store_pb2.Event.Path(
        steps=[metadata_store_pb2.Event.Path.Step(key="pushed_model"), metadata_store_pb2.Event.Path.Step(index=0)]))
    for number in range(runs):
        [run] = contexts("pipeline_run", [f"2026-12-01T00:{number:02d}:00.000000"])
        store.put_parent_contexts([metadata_store_pb2.ParentContext(child_id=run.id, parent_id=pipeline.id)])
        for node in NODES:
            execution = metadata_store_pb2.Execution(
                type_id=store.put_execution_type(metadata_store_pb2.ExecutionType(name=node)),
                last_known_state=metadata_store_pb2.Execution.COMPLETE)
            outputs = []
            if node == artifacts.PUSHER:
                pushed = metadata_store_pb2.Artifact(type_id=pushed_type, uri=f"/serving/{1796000000 + number}")
                pushed.custom_properties["pushed"].int_value = 1
                pushed.custom_properties["pushed_version"].string_value = str(1796000000 + number)
                outputs = [(pushed, output)]
            store.put_execution(execution, outputs, [pipeline, run, nodes[node]])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(serving_dir: str) -> tuple[subprocess.Popen, str, str]:
    """The project's model server on `serving_dir`: (process, gRPC host:port, REST URL), once it serves."""
    grpc_port, rest_port = _free_port(), _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "serving.server", f"--model_name={PIPELINE_NAME}", f"--model_base_path={serving_dir}",
         f"--port={grpc_port}", f"--rest_api_port={rest_port}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rest = f"http://127.0.0.1:{rest_port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{rest}/v1/models/{PIPELINE_NAME}", timeout=2) as reply:
                if "AVAILABLE" in reply.read().decode():
                    return server, f"127.0.0.1:{grpc_port}", rest
        except OSError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit(f"startup_benchmark: the model server on {serving_dir} did not serve within 180 s")


def run_once(command: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, exit status, what it printed) of one whole process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
    process.stdout.close()
    return wall, usage.ru_utime + usage.ru_stime, process.returncode, out.decode(errors="replace")


def commands(home: str, rest: str | None, grpc: str | None) -> dict[str, list[str]]:
    python = sys.executable
    cli = [python, "-m", "pipeline.cli.main"]  # what the taxi-pipeline script runs
    client = [python, "-m", "serving.clients", str(CSV), "--limit", "3"]
    found = {
        "python -c pass": [python, "-c", "pass"],
        "import ml_metadata": [python, "-c", "import ml_metadata.metadata_store"],
        "import tensorflow": [python, "-c", "import tensorflow"],
        "taxi-pipeline --help": [*cli, "--help"],
        "taxi-pipeline runs": [*cli, "runs", "--set", f"output_root={home}"],
    }
    if rest:
        found["client --rest (3 rows)"] = [*client, "--rest", rest]
    if grpc:
        found["client --grpc (3 rows)"] = [*client, "--grpc", grpc]
    return found


def measure(named: dict[str, list[str]], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, cpu) per round per command; each command's first run is checked, then not counted."""
    for name, command in named.items():
        wall, _, status, out = run_once(command)
        if status != 0:
            raise SystemExit(f"startup_benchmark: {name} exited {status}:\n{out[-2000:]}")
        print(f"  warm-up {name:28s} {wall:6.2f} s   {out.strip().splitlines()[-1][:70] if out.strip() else ''}")
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in named}
    for _ in range(rounds):
        for name, command in named.items():
            wall, cpu, _, _ = run_once(command)
            figures[name].append((wall, cpu))
    return figures


def report(figures: dict[str, list[tuple[float, float]]], rounds: int) -> dict:
    def ratio(name: str, reference: str) -> float:
        return statistics.median(a[0] / b[0] for a, b in zip(figures[name], figures[reference]))

    print(f"\nMedians of {rounds} rounds (each round runs every command once, in turn); "
          "ratios of wall time, per round, then the median")
    print(f"{'command':28s} {'wall s':>7s} {'cpu s':>7s}  {'/ pass':>7s} {'/ ml_metadata':>13s} {'/ tensorflow':>12s}")
    results = {}
    for name, rows in figures.items():
        wall, cpu = statistics.median(w for w, _ in rows), statistics.median(c for _, c in rows)
        ratios = {reference: ratio(name, reference) for reference in REFERENCES}
        results[name] = {"wall_seconds": wall, "cpu_seconds": cpu, "ratio_to": ratios}
        print(f"{name:28s} {wall:7.2f} {cpu:7.2f}  {ratios['python -c pass']:7.1f} "
              f"{ratios['import ml_metadata']:13.2f} {ratios['import tensorflow']:12.3f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="output root whose metadata.db `runs` reads (default: a store made here)")
    parser.add_argument("--runs", type=int, default=10, help="pipeline runs in the made store (default 10)")
    parser.add_argument("--serving_dir", help="model folder (<output_root>/serving/taxi-tips): start a server on it "
                                              "and time the client over REST and gRPC")
    parser.add_argument("--rest", help="time the REST client against this running server instead")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every command (default 5)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="startup-bench-") as scratch:
        home = args.home
        if home is None:
            home = scratch
            record_runs(os.path.join(scratch, "metadata.db"), args.runs)
        server, grpc, rest = None, None, args.rest
        if args.serving_dir and not rest:
            server, grpc, rest = start_server(args.serving_dir)
        try:
            print(f"Start-up benchmark: {'the store of ' + home if args.home else f'a made store of {args.runs} runs'}"
                  f"{', client against ' + rest if rest else ', no client (give --serving_dir or --rest)'}")
            figures = measure(commands(home, rest, grpc), args.rounds)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
    results = report(figures, args.rounds)
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "commands": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
