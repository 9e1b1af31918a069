"""Artifact types of this pipeline's own components.

The names take the `<namespace>.<Title>` form Kubeflow v2 requires of custom types.
"""
from __future__ import annotations

from tfx.types.artifact import Artifact


class DataDistances(Artifact):
    """distances.json: every drift, skew and volume measure of a run with its threshold."""

    TYPE_NAME = "taxi_tips.DataDistances"


class DataReport(Artifact):
    """index.html: the run's offline data report."""

    TYPE_NAME = "taxi_tips.DataReport"
