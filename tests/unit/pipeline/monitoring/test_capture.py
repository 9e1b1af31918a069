"""The captured span: what clients sent, with the tip the outcome reported, as the next span."""
import collections
import csv

import pandas as pd
import pytest

from pipeline.monitoring.capture import capture_span
from pipeline.monitoring.logged_predictions import JoinedWindow
from pipeline.monitoring.outcomes import Outcome
from serving.clients.request_encoding import feature_types_from_schema, row_to_example
from tests.conftest import SCHEMA, shipped_lines, write_span

# What clients send: every feature of the schema's SERVING environment.
TYPES = feature_types_from_schema(str(SCHEMA))


def _window(rows: list[dict], outcomes: list[Outcome], timestamps: list[int]) -> JoinedWindow:
    examples = [row_to_example(row, TYPES).SerializeToString() for row in rows]
    frame = pd.DataFrame({"timestamp": timestamps})
    return JoinedWindow(0, 100, frame, examples, outcomes, collections.Counter(), collections.Counter(), 0,
                        collections.Counter())


def _shipped_rows(count: int) -> list[dict]:
    return list(csv.DictReader(shipped_lines(4)[:count + 1]))


def test_rows_with_a_tip_become_the_next_span_in_the_training_header(tmp_path):
    write_span(tmp_path, 4, shipped_lines(4)[:3])
    rows = _shipped_rows(3)
    outcomes = [Outcome(2.5, None, None, 50, "a:2"), Outcome(None, None, 1, 50, "a:3"),  # label only: not captured
                Outcome(0.0, 31.25, None, 50, "a:4")]
    span, count = capture_span(_window(rows, outcomes, [10, 11, 12]), str(tmp_path), since=0)
    assert span == tmp_path / "span-5" and count == 2
    lines = (span / "data.csv").read_text().splitlines()
    assert lines[0] == shipped_lines(4)[0].strip()
    captured = list(csv.DictReader(lines))
    assert [row["tips"] for row in captured] == ["2.5", "0.0"]
    assert captured[0]["fare"] == rows[0]["fare"] and captured[1]["fare"] == "31.25"  # the outcome's fare wins
    for name in ("payment_type", "company", "trip_start_timestamp", "trip_start_hour", "pickup_community_area"):
        assert captured[0][name] == rows[0][name], name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_rows_before_the_last_capture_and_windows_without_tips_write_nothing(tmp_path):
    write_span(tmp_path, 1, shipped_lines(4)[:3])
    rows = _shipped_rows(2)
    window = _window(rows, [Outcome(1.0, None, None, 5, "a:2"), Outcome(1.0, None, None, 5, "a:3")], [10, 20])
    assert capture_span(window, str(tmp_path), since=30) == (None, 0)
    span, count = capture_span(window, str(tmp_path), since=15)
    assert span.name == "span-2" and count == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["span-1", "span-2"]


def test_a_span_folder_that_appears_meanwhile_is_not_overwritten(tmp_path, monkeypatch):
    write_span(tmp_path, 1, shipped_lines(4)[:3])
    from pipeline.monitoring import capture

    real = capture.list_spans
    monkeypatch.setattr(capture, "list_spans", lambda root: (write_span(tmp_path, 2, ["x\n"]), real(root))[1][:1])
    with pytest.raises(OSError):
        capture_span(_window(_shipped_rows(1), [Outcome(1.0, None, None, 5, "a:2")], [10]), str(tmp_path), since=0)
    assert (tmp_path / "span-2" / "data.csv").read_text() == "x\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
