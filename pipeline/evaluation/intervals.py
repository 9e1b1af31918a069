"""Metric values with the 95% interval Evaluator computed for them, and how they read.

A value prints with its interval, "0.9412 [0.9371, 0.9450]", so a reader sees how far the
evaluation rows pin it down. Intervals are printed only for slices with at least
min_slice_examples examples of each class (the slices the floor gates): TFMA's jackknife
returns an interval for smaller ones too, but with a few dozen examples of a class the
spread of its 20 leave-a-twentieth-out AUCs says little about the AUC's error, so such a
slice reads "no interval: fewer than 50 examples of each class". AUC on a slice with one
class only is undefined (TFMA reports 0.0), and reads so.
"""
from __future__ import annotations

import math

from pipeline.evaluation import slice_floor


class Estimate(float):
    """A metric value that also carries its 95% interval (None when Evaluator computed none)."""

    interval: tuple[float, float] | None

    def __new__(cls, value: float, interval: tuple[float, float] | None = None) -> Estimate:
        made = super().__new__(cls, value)
        made.interval = interval
        return made

    def __reduce__(self):  # keeps the interval through copy and pickle
        return Estimate, (float(self), self.interval)


def interval_of(value: float) -> tuple[float, float] | None:
    return getattr(value, "interval", None)


def text(value: float | None, digits: int = 4, signed: bool = False, with_interval: bool = True) -> str:
    """'0.9412 [0.9371, 0.9450]'; '-0.0040 [-0.0120, +0.0041]' when `signed`; 'undefined' for NaN or inf."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return "undefined"
    spec = f"{'+' if signed else ''}.{digits}f"
    bounds = interval_of(value) if with_interval else None
    if not bounds:
        return format(value, spec)
    return f"{format(value, spec)} [{format(bounds[0], spec)}, {format(bounds[1], spec)}]"


def one_class(count: float, mean_label: float) -> bool:
    """Whether every example of the slice has the same label: AUC is undefined there."""
    positives = round(count * mean_label)
    return positives == 0 or positives == round(count)


def meaningful(count: float, mean_label: float, min_examples: int) -> bool:
    """Whether the slice has enough examples of each class for its AUC interval to mean something."""
    return slice_floor.is_gated(count, mean_label, min_examples)


def too_few(min_examples: int) -> str:
    return f"no interval: fewer than {min_examples} examples of each class"
