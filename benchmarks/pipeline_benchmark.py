"""Pipeline benchmark: this project's pipeline against TFX's own taxi example, in one run.

Both run from scratch (empty output folders) in their own processes on this machine, one
after the other, with the example's train and eval steps (1000 and 150), on the same
15,002 taxi rows (the example reads them as one file, this project as four spans).
Wall time includes process start and imports for both. Prints each component's time and
our time / reference time; the target is 0.5 or less.

    python benchmarks/pipeline_benchmark.py [--repeat N]
"""
from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.5
STEP_LINE = re.compile(r"^\[\d+/\d+\] (\S+) (done|cached) in ([\d.]+) s$")


def _timed(command: list[str], label: str) -> tuple[float, dict[str, float]]:
    print(f"--- {label}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        sys.exit(f"{label} failed (exit {process.returncode}):\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}")
    components = {}
    for line in process.stdout.splitlines():
        match = STEP_LINE.match(line.strip())
        if match:
            components[match.group(1)] = float(match.group(3))
    print(f"    {seconds:.1f} s wall", flush=True)
    return seconds, components


def _split(components: dict[str, float], total: float) -> str:
    rows = [f"    {name:32s} {seconds:6.1f} s" for name, seconds in components.items() if seconds >= 0.05]
    rows.append(f"    {'(start-up, imports, the rest)':32s} {total - sum(components.values()):6.1f} s")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs; the median of each side is compared")
    args = parser.parse_args()
    ours, reference = [], []
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory() as ours_home, tempfile.TemporaryDirectory() as reference_home:
            reference.append(_timed([sys.executable, "benchmarks/reference_taxi.py", "--home", reference_home],
                                    f"reference {attempt + 1}: TFX taxi_pipeline_native_keras"))
            ours.append(_timed([sys.executable, "-m", "pipeline", "run", "--set", f"output_root={ours_home}",
                                "--set", "train_steps=1000", "--set", "eval_steps=150"],
                               f"ours {attempt + 1}: taxi-pipeline run"))
    ours_time, ours_split = sorted(ours)[len(ours) // 2]
    reference_time, reference_split = sorted(reference)[len(reference) // 2]
    print("\nReference (TFX taxi_pipeline_native_keras, LocalDagRunner, multi-processing Beam):")
    print(_split(reference_split, reference_time))
    print(f"    {'total':32s} {reference_time:6.1f} s")
    print("\nThis pipeline (taxi-pipeline run, defaults):")
    print(_split(ours_split, ours_time))
    print(f"    {'total':32s} {ours_time:6.1f} s")
    ratio = ours_time / reference_time
    print(f"\nours / reference = {ours_time:.1f} / {reference_time:.1f} = {ratio:.2f} "
          f"(target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'})")


if __name__ == "__main__":
    main()
