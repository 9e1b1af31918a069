"""Generated spans pass the pipeline's schema validation; a drifted one is caught.

Uses the same checks as the pipeline's data gate: statistics of the CSV as ExampleGen
types it (tfdv infers int/float/string per column the same way), validated against the
curated schema/schema.pbtxt in the TRAINING environment.
"""
from __future__ import annotations

import pytest
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions

from data import synthetic
from tests.conftest import SCHEMA

pytestmark = pytest.mark.slow


def _anomalies(path) -> dict[str, str]:
    statistics = tfdv.generate_statistics_from_csv(
        str(path), pipeline_options=PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"]))
    anomalies = tfdv.validate_statistics(statistics, tfdv.load_schema_text(str(SCHEMA)), environment="TRAINING")
    return {name: info.description for name, info in anomalies.anomaly_info.items()}


def test_undrifted_span_has_no_anomalies(tmp_path):
    path = synthetic.write_spans(tmp_path, rows=5000, seed=11)[0]
    assert _anomalies(path) == {}


def test_span_with_an_unknown_payment_type_is_flagged(tmp_path):
    path = synthetic.write_spans(tmp_path, rows=5000, seed=11, payment_mix={"Bitcoin": 0.05})[0]
    anomalies = _anomalies(path)
    assert list(anomalies) == ["payment_type"]
    assert "Bitcoin" in anomalies["payment_type"]
