"""Beam pipeline arguments for each runner profile, built and checked in one place."""
from __future__ import annotations

PROFILES = ("in_memory", "multi_processing")


def beam_pipeline_args(profile: str, workers: int = 0) -> list[str]:
    """Arguments for TFX's Beam-based components.

    in_memory runs Beam in the orchestrating process: no worker start-up, best for the
    shipped data on a small machine. multi_processing starts `workers` processes (0 = one
    per core) and pays off once data no longer fits one core's time budget.
    """
    if profile == "in_memory":
        return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    if profile == "multi_processing":
        return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    raise ValueError(f"beam_profile {profile!r} is not one of {PROFILES}")
