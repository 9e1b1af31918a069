"""`taxi-pipeline reproduce VERSION`: train a pushed version again from its recorded inputs, compare metrics.

The run that pushed VERSION recorded its settings, the hyperparameters Trainer used, its
spans with the sha256 of each file, and the code and environment it ran with
(pipeline/governance/provenance.py). The re-run uses the same settings and hyperparameters
(no tuning: the tuned values are the recorded ones) on exactly the recorded files, linked
into a data folder of its own, and writes into an output root of its own: the real
metadata store and serving folder are not touched. It does not skip a changed file: data
whose hash differs cannot reproduce anything, so the command stops and names the file.

On the same machine and library versions the re-run computes the same model to the bit:
ExampleGen writes each split's rows in an order fixed by their content
(pipeline/ingest/fast_csv_example_gen.py), Transform's statistics and logarithms do not depend
on how Beam batched the rows (models/preprocessing.py), Trainer is seeded and reads rows in an
order fixed by their values (models/seeding.py), and the model's sigmoid does not depend on
Evaluator's batches (models/model.py). Two runs on the shipped data gave all 1,233 of
Evaluator's metric values equal to the bit. DEFAULT_TOLERANCE (1e-6, printed with the
table) allows for float rounding in Evaluator's sums and nothing more: a metric further off
means the re-run computed something else. On another machine or with other library versions
(warned about) the same code can round differently, and the metrics differ by more.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import sys
import tomllib
from typing import TextIO

from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.governance import compare, provenance
from pipeline.prepare import file_sha256, models_fingerprint

DEFAULT_TOLERANCE = 1e-6
# What the re-run sets itself: where it writes and reads, and the data gate's serving data
# (a request log grows after the run; skew gates a run and changes no metric).
OWN_SETTINGS = ("output_root", "data_root", "metadata_store", "serving_data", "tune", "hyperparameters")


class ReproduceError(ValueError):
    """The version cannot be re-run as recorded (unknown, no record, its data changed)."""


class RerunFailed(RuntimeError):
    """The re-run itself stopped (a gate, a failing component): nothing to compare."""


@dataclasses.dataclass
class Plan:
    run_id: str
    record: provenance.Provenance
    config: PipelineConfig  # of the re-run
    warnings: list[str]


def _data_problems(record: provenance.Provenance) -> list[str]:
    problems = []
    for path, digest in sorted(record.data_files.items()):
        if not os.path.isfile(path):
            problems.append(f"{path} is gone")
        elif (now := file_sha256(path)) != digest:
            problems.append(f"{path} changed (sha256 {digest[:12]} recorded, {now[:12]} now)")
    return problems


def _environment_warnings(record: provenance.Provenance, code_version: str) -> list[str]:
    """What differs from the recorded code and environment: the re-run may then differ for that reason."""
    commit, dirty = provenance.git_state()
    found = []
    if (record.git_commit, record.git_dirty) != (commit, dirty):
        found.append(f"the checkout is commit {commit} (dirty: {dirty}); the run was at {record.git_commit} "
                     f"(dirty: {record.git_dirty})")
    if record.models_fingerprint != code_version:
        found.append(f"models/ differs from the code the run trained with (fingerprint {record.models_fingerprint} "
                     f"then, {code_version} now)")
    lock = provenance.lock_sha256()
    if record.lock_sha256 != lock:
        found.append(f"requirements.lock differs (sha256 {record.lock_sha256[:12]} then, {lock[:12]} now)")
    libraries = provenance.library_versions()
    for name in sorted(set(record.libraries) | set(libraries)):
        if record.libraries.get(name) != libraries.get(name):
            found.append(f"{name} {libraries.get(name)} is installed; the run had {record.libraries.get(name)}")
    if record.python != platform.python_version():
        found.append(f"Python {platform.python_version()}; the run had {record.python}")
    return found


def _link_data(record: provenance.Provenance, data_root: pathlib.Path) -> None:
    """span-<N>/ folders holding links to exactly the recorded files (a file added since is left out)."""
    for path in record.data_files:
        link = data_root / provenance.span_name(path) / os.path.basename(path)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.abspath(path))


def plan(config: PipelineConfig, version: str, work_dir: pathlib.Path) -> Plan:
    """Check the recorded inputs of `version` and prepare the re-run's settings and data under `work_dir`."""
    store = metadata.open_store(config.metadata_path)
    run_id = compare.run_of_version(store, version)
    record = provenance.load(store, run_id)
    if record is None:
        raise ReproduceError(f"version {version} was pushed by run {run_id}, which has no provenance record (it "
                             "ran before runs were recorded, or its record failed: a warning in its log says "
                             "why); it cannot be re-run as recorded")
    if record.data_note:  # the files' hashes were not recorded, and the note says why
        raise ReproduceError(f"run {run_id} cannot be re-run as recorded: {record.data_note}")
    if not record.data_files or not all(record.data_files.values()):
        raise ReproduceError(f"run {run_id} read remote data ({record.data_root}), which was not hashed; "
                             "only runs on local spans can be re-run and checked")
    problems = _data_problems(record)
    if problems:
        raise ReproduceError(f"the data of run {run_id} is no longer what it read, so it cannot be reproduced: "
                             + "; ".join(problems))
    warnings = _environment_warnings(record, models_fingerprint())
    settings = tomllib.loads(record.config_toml)
    known = {field.name for field in dataclasses.fields(PipelineConfig)}
    dropped = sorted(set(settings) - known)
    if dropped:
        warnings.append(f"settings recorded but unknown to this code, left out: {', '.join(dropped)}")
    if not record.hyperparameters:
        warnings.append("no hyperparameters were recorded (Trainer exported none); the recorded settings' are used")
    data_root = work_dir / "data"
    _link_data(record, data_root)
    values = {name: value for name, value in settings.items() if name in known and name not in OWN_SETTINGS}
    values.update(output_root=str(work_dir / "out"), data_root=str(data_root), tune=False,
                  hyperparameters=record.hyperparameters or settings.get("hyperparameters", {}))
    return Plan(run_id, record, PipelineConfig(**values).validate(), warnings)


def metric_lines(recorded: dict[str, float], reproduced: dict[str, float], tolerance: float) -> tuple[list[str], bool]:
    """The metrics side by side; whether every one agrees within `tolerance`."""
    lines = [f"{'metric':22s} {'recorded':>14s} {'reproduced':>14s} {'difference':>12s}"]
    agree = bool(recorded)
    for label in [label for _, _, label in compare.METRICS if label in recorded or label in reproduced]:
        a, b = recorded.get(label), reproduced.get(label)
        if a is None or b is None:
            agree = False
            lines.append(f"{label:22s} {str(a):>14s} {str(b):>14s} {'missing':>12s}  OUTSIDE")
            continue
        difference = b - a
        within = abs(difference) <= tolerance
        agree &= within
        lines.append(f"{label:22s} {a:14.8f} {b:14.8f} {difference:+12.2e}  {'ok' if within else 'OUTSIDE'}")
    return lines, agree


def reproduce(config: PipelineConfig, version: str, work_dir: pathlib.Path, tolerance: float = DEFAULT_TOLERANCE,
              out: TextIO | None = None) -> bool:
    """Re-run `version`'s recorded inputs under `work_dir`; True when every metric agrees within `tolerance`.

    ReproduceError when it cannot be re-run as recorded (compare.CompareError or lineage.LineageError
    when the version is unknown); RerunFailed when the re-run stops.
    """
    from pipeline.runners.local_runner import run_local

    out = out or sys.stdout  # the one at call time (a test's redirect), not at import

    def write(text: str) -> None:
        print(text, file=out, flush=True)

    rerun = plan(config, version, work_dir)
    write(f"Reproducing version {version}: run {rerun.run_id} (spans {', '.join(map(str, rerun.record.spans))} "
          f"of {rerun.record.data_root}, every file's sha256 as recorded; hyperparameters "
          f"{json.dumps(rerun.config.hyperparameters, sort_keys=True)}) into {work_dir}")
    for warning in rerun.warnings:
        write(f"Warning: {warning}")
    result = run_local(rerun.config, out=out)
    if not result.succeeded or not result.run_id:
        raise RerunFailed(f"the re-run failed: {result.error}; its log: {result.log_path}")
    recorded = compare.run_metrics(metadata.open_store(config.metadata_path), rerun.run_id)
    reproduced = compare.run_metrics(metadata.open_store(rerun.config.metadata_path), result.run_id)
    lines, agree = metric_lines(recorded, reproduced, tolerance)
    write(f"\nMetrics of version {version} (run {rerun.run_id}) and of the re-run (run {result.run_id}); "
          f"tolerance: |difference| <= {tolerance:g}")
    for line in lines:
        write(line)
    write(f"Reproduced: every metric within {tolerance:g}." if agree else
          f"NOT reproduced: a metric differs by more than {tolerance:g}"
          + (" (the code or environment differs, see the warnings above)." if rerun.warnings else "."))
    return agree
