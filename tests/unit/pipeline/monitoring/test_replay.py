"""Replayed traffic's outcome files: a share of the rows, in parts observed one after another."""
from pipeline.monitoring.outcomes import read_outcomes
from pipeline.monitoring.replay import write_outcome_files


def test_outcome_parts_hold_a_share_of_the_rows_and_read_back_as_the_feed(tmp_path):
    rows = [{"tips": f"{i}.5", "fare": "10.0"} for i in range(100)] + [{"tips": "", "fare": "3.0"}]
    ids = [f"r-{i}" for i in range(101)]
    paths = write_outcome_files(tmp_path, rows, ids, parts=2, share=0.5, observed_at=1_000_000, seed=3)
    assert [p.name for p in paths] == ["outcomes-19700112T134640-001.csv", "outcomes-19700112T134640-002.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # no staging file left
    outcomes = read_outcomes(str(tmp_path))
    assert len(outcomes.by_id) == 50 and "r-100" not in outcomes.by_id  # a row without a tip has no outcome
    assert {o.observed_at for o in outcomes.by_id.values()} == {1_000_000 - 60, 1_000_000}
    assert all(o.tips == float(rows[int(i[2:])]["tips"]) and o.fare == 10.0 for i, o in outcomes.by_id.items())
