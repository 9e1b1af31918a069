"""Artifact types of this pipeline's own components, recorded in ML Metadata by these names."""
from __future__ import annotations

from tfx.types.artifact import Artifact


class DataDistances(Artifact):
    """distances.json: every drift, skew and volume measure of a run with its threshold."""

    TYPE_NAME = "DataDistances"


class DataReport(Artifact):
    """index.html: the run's offline data report."""

    TYPE_NAME = "DataReport"
