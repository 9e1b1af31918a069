"""`taxi-pipeline runs`: the table of runs, and the outcome each run is summed up by."""
from __future__ import annotations

import calendar

from ml_metadata.proto import metadata_store_pb2

from pipeline import artifacts
from pipeline.governance.runs import RunSummary, _outcome, format_runs
from pipeline.metadata import NodeRun

NEW_YEAR = calendar.timegm((2026, 1, 1, 0, 0, 0))


def test_no_runs_says_so():
    assert format_runs([]) == "No runs recorded yet."


def test_runs_table_has_utc_start_duration_run_id_and_outcome_aligned():
    text = format_runs([
        RunSummary("2026-01-01T00:00:00.000000", NEW_YEAR, 312.34, "pushed 1767225912"),
        RunSummary("rollback-1767300000", NEW_YEAR + 86399.9, 0.0, "rollback: version 1767225912 serves again as "
                   "1767300000"),
    ])
    assert text.splitlines() == [
        "started (UTC)         duration  run                                outcome",
        "2026-01-01 00:00:00     312.3s  2026-01-01T00:00:00.000000         pushed 1767225912",
        "2026-01-01 23:59:59       0.0s  rollback-1767300000                rollback: version 1767225912 serves "
        "again as 1767300000",
    ]


def test_a_long_run_id_does_not_swallow_the_outcome():
    run_id = "taxi-tips.scheduled__2026-01-01T00:00:00+00:00"
    summaries = [RunSummary(run_id, NEW_YEAR, 1.0, "FAILED at Trainer"),
                 RunSummary("2026-01-01T00:00:00.000000", NEW_YEAR, 2.0, "pushed 1")]
    header, line, local = format_runs(summaries).splitlines()
    assert line.endswith(f"{run_id} FAILED at Trainer")
    # The column widens for it, so the outcomes still line up under their header.
    assert header.index("outcome") == line.index("FAILED") == local.index("pushed")


def artifact(**custom) -> metadata_store_pb2.Artifact:
    made = metadata_store_pb2.Artifact()
    for name, value in custom.items():
        if isinstance(value, int):
            made.custom_properties[name].int_value = value
        else:
            made.custom_properties[name].string_value = value
    return made


def node(node_id, state="COMPLETE", **outputs) -> NodeRun:
    return NodeRun(node_id, state, {key: [value] for key, value in outputs.items()})


def test_outcome_names_the_first_node_that_failed():
    nodes = [node(artifacts.EXAMPLE_GEN), node(artifacts.DATA_GATE, "FAILED"), node(artifacts.TRANSFORM, "FAILED")]
    assert _outcome(nodes) == "FAILED at DataGate"


def test_outcome_of_a_run_that_never_reached_pusher_is_incomplete():
    assert _outcome([node(artifacts.EXAMPLE_GEN), node(artifacts.TRAINER)]) == "incomplete (stopped before Pusher)"


def test_outcome_names_the_pushed_version():
    pusher = node(artifacts.PUSHER, pushed_model=artifact(pushed=1, pushed_version="1767225912"))
    assert _outcome([node(artifacts.TRAINER), pusher]) == "pushed 1767225912"


def test_outcome_of_a_cached_push_says_nothing_new():
    pusher = node(artifacts.PUSHER, "CACHED", pushed_model=artifact(pushed=1, pushed_version="1767225912"))
    assert _outcome([pusher]) == "nothing new (1767225912 already pushed)"


def test_outcome_not_pushed_gives_every_reason():
    nodes = [node(artifacts.EVALUATOR, blessing=artifact(blessed=0)),
             node(artifacts.SERVABILITY_CHECK, blessing=artifact(blessed=0)),
             node(artifacts.PUSHER, pushed_model=artifact(pushed=0))]
    assert _outcome(nodes) == "not pushed: not blessed and not servable"
    nodes[1] = node(artifacts.SERVABILITY_CHECK, blessing=artifact(blessed=1))
    assert _outcome(nodes) == "not pushed: not blessed"


def test_outcome_not_pushed_without_any_blessing_on_record():
    assert _outcome([node(artifacts.PUSHER, pushed_model=artifact(pushed=0))]) == "not pushed: no blessing"
