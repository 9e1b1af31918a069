"""`taxi-pipeline schema-diff`: what a person reviews before accepting a schema change."""
from __future__ import annotations

import pytest

from pipeline.cli.main import main
from tests.conftest import SHIPPED_SPANS, write_span
from tests.data_cases import edit_column, rows, without_column


def test_shipped_span_matches_the_curated_schema(capsys):
    assert main(["schema-diff", "--span", "4"]) == 0
    assert "span 4 matches" in capsys.readouterr().out
    assert main(["schema-diff", "--set", f"data_root={SHIPPED_SPANS}"]) == 0  # newest span by default


def test_changed_span_lists_each_difference(tmp_path, capsys):
    header, lines = rows(4, count=600)
    changed = edit_column([header] + lines, "payment_type", lambda value, _: "Bitcoin" if value == "Cash" else value)
    changed = edit_column(changed, "trip_start_hour",
                          lambda value, chance: f"{value}.5" if chance.random() < .1 else value)
    changed = [changed[0].strip() + ",driver_id\n"] + [line.strip() + ",7\n" for line in changed[1:]]
    write_span(tmp_path, 3, changed)
    assert main(["schema-diff", "--span", "3", "--set", f"data_root={tmp_path}"]) == 1
    out = capsys.readouterr().out
    assert "'payment_type': values outside the curated domain: Bitcoin" in out
    assert "'trip_start_hour': type INT in the curated schema, FLOAT inferred from the data" in out
    assert "'driver_id': in the data (INT) but not in the curated schema" in out


def test_a_column_gone_is_a_difference_and_an_unreadable_span_a_clear_error(tmp_path, capsys):
    header, lines = rows(4, count=10)
    write_span(tmp_path, 1, without_column([header] + lines, "fare"))
    assert main(["schema-diff", "--set", f"data_root={tmp_path}"]) == 1
    assert "'fare': in the curated schema but not in the data" in capsys.readouterr().out
    write_span(tmp_path, 2, [header] + lines[:3] + [lines[3][:15]])
    assert main(["schema-diff", "--set", f"data_root={tmp_path}"]) == 2
    assert "span-2/data.csv line 5: " in capsys.readouterr().err


@pytest.mark.parametrize("setting", ["on_drift=ignore", "on_skew=STOP", "on_schema_anomaly="])
def test_gate_policy_accepts_only_stop_or_warn(setting, capsys):
    assert main(["run", "--set", setting]) == 2
    assert "must be 'stop' or 'warn'" in capsys.readouterr().err


def test_serving_data_that_is_not_there_is_named_before_the_run(tmp_path, capsys):
    assert main(["run", "--set", f"output_root={tmp_path}", "--set", f"serving_data={tmp_path}/requests-*.csv"]) == 2
    assert f"serving_data {tmp_path}/requests-*.csv: no such file" in capsys.readouterr().err
