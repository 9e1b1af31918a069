"""Serving benchmark: latency and throughput of the model server against the in-process call.

In one run on this machine: the pushed model (or the newest version under --serving_dir)
is called in-process (the floor), then through gRPC and REST at concurrency 1, 8 and 32,
without and with server-side batching. The server runs in its own process, as in
production; the load comes from threads of this one. Each request scores one taxi row through
serving_default. Prints p50/p99 latency, throughput, and the ratios the targets use:
  - concurrency 1: p50 overhead over in-process <= 1 ms (gRPC), <= 2 ms (REST)
  - batching on, concurrency 32: throughput >= in-process sequential one-row calls

    python benchmarks/serving_benchmark.py --serving_dir out/serving/taxi-tips [--seconds 5]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import requests  # noqa: E402
import tensorflow as tf  # noqa: E402

from serving import signature_calls  # noqa: E402
from serving.clients import GrpcClient, RestClient  # noqa: E402
from serving.examples import (
    read_csv_rows,  # noqa: E402
    row_to_example,  # noqa: E402
)
from serving.model_store import list_versions  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
NAME = "taxi-tips"


def _measure(call, concurrency: int, seconds: float, max_requests: int = 20000) -> tuple[list[float], float]:
    """Latencies (s) and throughput (requests/s) of `call` from `concurrency` threads, bounded in time and count."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    per_thread = max_requests // concurrency

    def worker(_):
        mine = []
        for _ in range(per_thread):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            call()
            mine.append(time.perf_counter() - started)
        return mine

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for mine in pool.map(worker, range(concurrency)):
            latencies.extend(mine)
    return latencies, len(latencies) / (time.monotonic() - started)


def _row(label: str, latencies: list[float], throughput: float) -> str:
    ms = sorted(1000 * x for x in latencies)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return f"  {label:34s} p50 {statistics.median(ms):7.2f} ms  p99 {p99:7.2f} ms  {throughput:8.1f} req/s"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(serving_dir: str, batching: bool) -> tuple[subprocess.Popen, int, int]:
    grpc_port, rest_port = _free_port(), _free_port()
    command = [sys.executable, "-m", "serving.server", f"--model_name={NAME}", f"--model_base_path={serving_dir}",
               f"--port={grpc_port}", f"--rest_api_port={rest_port}", "--file_system_poll_wait_seconds=0"]
    if batching:
        command.append(f"--batching_parameters_file={REPO / 'serving' / 'deploy' / 'batching_parameters.txt'}")
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if "AVAILABLE" in requests.get(f"http://127.0.0.1:{rest_port}/v1/models/{NAME}", timeout=1).text:
                return server, grpc_port, rest_port
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("the model server did not become ready within 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serving_dir", default=str(REPO / "out" / "serving" / NAME))
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    versions = list_versions(args.serving_dir)
    if not versions:
        print(f"no pushed model under {args.serving_dir}: run `make run` first", file=sys.stderr)
        return 2
    row = list(read_csv_rows(str(REPO / "data" / "taxi" / "span-4" / "data.csv")))[:1]
    function = tf.saved_model.load(os.path.join(args.serving_dir, str(versions[-1]))).signatures["serving_default"]
    inputs = {"examples": np.array([row_to_example(row[0]).SerializeToString()], dtype=object)}
    for _ in range(20):
        signature_calls.run(function, inputs)
    print(f"model {args.serving_dir}/{versions[-1]}, one row per request, {args.seconds:.0f} s per measurement")
    floor, floor_throughput = _measure(lambda: signature_calls.run(function, inputs), 1, args.seconds)
    print(_row("in-process, sequential", floor, floor_throughput))
    floor_p50 = statistics.median(floor) * 1000
    results = {}
    for batching in (False, True):
        server, grpc_port, rest_port = _start_server(args.serving_dir, batching)
        clients = {"gRPC": GrpcClient(f"127.0.0.1:{grpc_port}", NAME),
                   "REST": RestClient(f"http://127.0.0.1:{rest_port}", NAME)}
        try:
            for api, client in clients.items():
                client.predict(row)
                for concurrency in (1, 8, 32):
                    latencies, throughput = _measure(lambda c=client: c.predict(row), concurrency, args.seconds)
                    results[(batching, api, concurrency)] = (latencies, throughput)
                    label = f"{api} c={concurrency}{' batching' if batching else ''}"
                    print(_row(label, latencies, throughput), flush=True)
        finally:
            for client in clients.values():
                client.close()
            server.terminate()
            server.wait(timeout=30)
    print("\nTargets:")
    for api, limit in (("gRPC", 1.0), ("REST", 2.0)):
        overhead = statistics.median(results[(False, api, 1)][0]) * 1000 - floor_p50
        print(f"  {api} p50 overhead at c=1: {overhead:.2f} ms (target <= {limit} ms: "
              f"{'met' if overhead <= limit else 'NOT met'})")
    for api in ("gRPC", "REST"):
        ratio = results[(True, api, 32)][1] / floor_throughput
        print(f"  {api} batching c=32 throughput / in-process sequential: {ratio:.2f} "
              f"(target >= 1: {'met' if ratio >= 1 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
