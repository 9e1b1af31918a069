"""CsvCheck: the component that stops a run on a broken CSV file before ExampleGen reads it.

The checks themselves are in pipeline/ingest/csv_rules.py.
"""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
from typing import TypedDict

import tensorflow_data_validation as tfdv
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component

from pipeline.ingest.csv_rules import check_spans
from pipeline.ingest.spans import spans_to_read


class CsvCheckResult(TypedDict):
    rows: int


@component
def CsvCheck(data_root: Parameter[str], spans: Parameter[str], schema_path: Parameter[str],
             data_fingerprint: Parameter[str]) -> CsvCheckResult:
    """`spans` is the run's spans setting; `data_fingerprint` only makes changed files a new input."""
    del data_fingerprint
    rows = check_spans(data_root, spans_to_read(data_root, spans), tfdv.load_schema_text(schema_path))
    return {"rows": sum(rows.values())}
