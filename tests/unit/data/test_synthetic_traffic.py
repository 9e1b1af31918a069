"""Synthetic traffic: logs read like the server's, outcomes the feed reader takes, scores of a given AUC."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from data import synthetic
from data import synthetic_traffic as traffic
from models import features as F
from pipeline.evaluation.eval_config import SLICE_FEATURES
from pipeline.monitoring.logged_predictions import join_window
from pipeline.monitoring.outcomes import Outcome, label, read_outcomes
from serving.clients.request_encoding import row_to_example
from serving.server.request_log import RequestLog, read_records

T0 = 1_796_083_200  # 2026-12-01T00:00:00Z


@pytest.fixture(scope="module")
def source() -> synthetic.SourceData:
    return synthetic.SourceData.load()


@pytest.fixture(scope="module")
def frame(source) -> pd.DataFrame:
    return synthetic.generate(2_000, seed=3, source=source)


def _ids(prefix: str, rows: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(rows)]


def test_examples_are_row_to_examples_of_the_serving_features(frame):
    assert (frame == "").to_numpy().any(), "the sample should have empty cells, which the examples leave out"
    examples = traffic.serialized_examples(frame)
    types = F.feature_types()
    for serialized, row in zip(examples, frame.to_dict("records")):
        assert tf.train.Example.FromString(serialized) == row_to_example(row, types)
    assert F.LABEL_KEY not in tf.train.Example.FromString(examples[0]).features.feature
    # A row without any cell is the empty Example, as row_to_example makes it.
    empty = pd.DataFrame({name: [""] for name in frame.columns})
    assert list(traffic.serialized_examples(empty)) == [row_to_example({}, types).SerializeToString()]


def test_cells_must_be_text(frame):
    with pytest.raises(ValueError, match="fare"):
        traffic.serialized_examples(frame.head(3).assign(fare=[1.0, 2.0, None]))


def test_written_log_reads_back_with_ids_versions_times_and_examples(tmp_path, frame):
    part = frame.head(250)
    path = tmp_path / "log" / "requests.tfrecord"
    predictions = traffic.scored(part, seed=0, quality=0.8)
    ids = _ids("a", 250)
    written = traffic.write_request_log(str(path), part, predictions, ids, [T0, T0 + 10, T0 + 20], version=4,
                                        version_label="canary")
    assert written == 3
    records = list(read_records(str(path)))
    assert [len(record_ids) for _, record_ids in records] == [100, 100, 50]
    assert [i for _, record_ids in records for i in record_ids] == ids
    examples = traffic.serialized_examples(part)
    for number, (entry, record_ids) in enumerate(records):
        rows = slice(100 * number, 100 * number + len(record_ids))
        assert entry.log_metadata.timestamp_secs == T0 + 10 * number
        assert entry.log_metadata.model_spec.version.value == 4
        assert entry.log_metadata.model_spec.signature_name == "serving_default"
        request, response = entry.predict_log.request, entry.predict_log.response
        assert request.model_spec.version_label == "canary" and not request.model_spec.HasField("version")
        assert response.model_spec.version.value == 4 and response.model_spec.name == traffic.MODEL_NAME
        logged = tf.make_ndarray(request.inputs["examples"])
        assert list(logged) == list(examples[rows])
        probability = tf.make_ndarray(response.outputs["tip_probability"])
        assert probability.dtype == np.float32 and probability.shape == (len(record_ids), 1)
        np.testing.assert_array_equal(probability.reshape(-1), predictions[rows])

    # Appending, addressed by version number: the request's spec names the version, without a label.
    traffic.write_request_log(str(path), part.head(5), predictions[:5], _ids("b", 5), T0 + 30, version=5, append=True)
    entry, record_ids = list(read_records(str(path)))[-1]
    assert record_ids == _ids("b", 5) and entry.predict_log.request.model_spec.version.value == 5
    assert entry.predict_log.request.model_spec.version_label == ""


def test_a_record_is_the_one_the_server_logs(tmp_path, frame):
    part = frame.head(7)
    examples = traffic.serialized_examples(part)
    predictions = traffic.scored(part, seed=1, quality=0.8).reshape(-1, 1)
    ids = _ids("s", 7)
    server_log = RequestLog(str(tmp_path / "server.tfrecord"))
    server_log.record(traffic.MODEL_NAME, 6, "serving_default", {"examples": examples},
                      {"tip_probability": predictions}, request_ids=ids, version_label="stable")
    server_log.close()
    [(served, served_ids)] = read_records(str(tmp_path / "server.tfrecord"))
    traffic.write_request_log(str(tmp_path / "ours.tfrecord"), part, predictions, ids,
                              served.log_metadata.timestamp_secs, version=6, version_label="stable")
    [(ours, our_ids)] = read_records(str(tmp_path / "ours.tfrecord"))
    assert ours == served and our_ids == served_ids
    assert (tmp_path / "ours.tfrecord").read_bytes() == (tmp_path / "server.tfrecord").read_bytes()


def test_timestamps_are_one_per_request(tmp_path, frame):
    part = frame.head(20)
    args = (part, np.full(20, 0.5), _ids("t", 20))
    per_row = np.repeat([T0, T0 + 5], 10)
    traffic.write_request_log(str(tmp_path / "a.tfrecord"), *args, per_row, 1, rows_per_request=10)
    assert [e.log_metadata.timestamp_secs for e, _ in read_records(str(tmp_path / "a.tfrecord"))] == [T0, T0 + 5]
    with pytest.raises(ValueError, match="equal within each request"):
        traffic.write_request_log(str(tmp_path / "b.tfrecord"), *args, T0 + np.arange(20), 1, rows_per_request=10)
    with pytest.raises(ValueError, match="3 timestamps"):
        traffic.write_request_log(str(tmp_path / "c.tfrecord"), *args, [T0] * 3, 1, rows_per_request=10)


def test_outcomes_read_back_with_the_feed_reader(tmp_path):
    ids = _ids("o", 4)
    rows = traffic.write_outcomes(str(tmp_path / "feed" / "one.csv"), ids, ["1.5", "0", "2.25", "3"],
                                  ["10.0", "", "5", ""], [T0, T0 + 1, T0 + 2.5, T0 + 3])
    assert rows == 4
    traffic.write_outcomes(str(tmp_path / "feed" / "two.csv.gz"), ["o-9"], np.array([0.5]), None, T0)
    assert sorted(p.name for p in (tmp_path / "feed").iterdir()) == ["one.csv", "two.csv.gz"]  # no .part left
    outcomes = read_outcomes(str(tmp_path / "feed"))
    assert outcomes.rows == 5 and outcomes.duplicates == 0
    assert outcomes.by_id["o-0"][:4] == (1.5, 10.0, None, T0)
    assert outcomes.by_id["o-1"][:4] == (0.0, None, None, T0 + 1)
    assert outcomes.by_id["o-2"][:4] == (2.25, 5.0, None, T0 + 2.5)
    assert outcomes.by_id["o-9"][:4] == (0.5, None, None, T0)
    with pytest.raises(ValueError, match="tip"):
        traffic.write_outcomes(str(tmp_path / "bad.csv"), ["x"], [""], None, T0)


def test_join_window_joins_the_rows_with_outcomes(tmp_path, frame):
    part = frame.head(600).reset_index(drop=True)
    ids = _ids("j", 600)
    predictions = traffic.scored(part, seed=2, quality=0.9)
    log = tmp_path / "requests.tfrecord"
    # 500 rows in the window (v7 by label, then v8 by number), 100 after it.
    traffic.write_request_log(str(log), part.iloc[:300], predictions[:300], ids[:300], T0 + 60, 7, "stable")
    traffic.write_request_log(str(log), part.iloc[300:500], predictions[300:500], ids[300:500], T0 + 120, 8,
                              append=True)
    traffic.write_request_log(str(log), part.iloc[500:], predictions[500:], ids[500:], T0 + 3600, 7, "stable",
                              append=True)
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(600, size=400, replace=False))
    fare = part["fare"].to_numpy()[chosen].copy()
    fare[::5] = ""  # the joiner then uses the request's fare
    traffic.write_outcomes(str(tmp_path / "outcomes" / "a.csv"), [ids[i] for i in chosen],
                           part["tips"].to_numpy()[chosen], fare, T0 + 1800)
    # A re-delivery (a duplicate, the first one kept) and an id no request has.
    traffic.write_outcomes(str(tmp_path / "outcomes" / "b.csv"), [ids[chosen[0]], "nobody"], ["99", "1"],
                           ["1", "5"], T0 + 7200)

    window = join_window(str(log), read_outcomes(str(tmp_path / "outcomes")), T0, T0 + 3600, SLICE_FEATURES)

    labels = traffic.big_tip_labels(part["tips"], part["fare"])
    expected = [i for i in chosen if i < 500 and labels[i] >= 0]
    assert window.rows["request_id"].tolist() == [ids[i] for i in expected]
    assert window.rows["big_tip"].tolist() == labels[expected].tolist()
    np.testing.assert_array_equal(window.rows["prediction"].to_numpy(), predictions[expected])
    assert window.rows["model_version"].tolist() == [7 if i < 300 else 8 for i in expected]
    assert window.rows["version_label"].tolist() == ["stable" if i < 300 else "-" for i in expected]
    assert window.rows["payment_type"].tolist() == part["payment_type"].to_numpy()[expected].tolist()
    assert window.logged == {(7, "stable"): 300, (8, "-"): 200}
    # The 100 rows after the window and "nobody" match nothing in it.
    assert window.unmatched_outcomes == int((chosen >= 500).sum()) + 1


def test_labels_are_the_joiners(frame):
    tips = ["2.0", "2.01", "0", "5", "1", "", "3.3"]
    fare = ["10.0", "10", "4", "", "4.95", "3", "16.5"]
    labels = traffic.big_tip_labels(tips, fare)
    for tip, cost, got in zip(tips, fare, labels):
        want = label(Outcome(float(tip), float(cost), None, 0.0, ""), None) if tip and cost else None
        assert got == (-1 if want is None else want), (tip, cost)
    assert labels.tolist() == [0, 1, 0, -1, 1, -1, 0]  # exactly 20% (2.0 of 10.0, 3.3 of 16.5) is no big tip


@pytest.mark.parametrize("quality", [0.6, 0.75, 0.9, 0.97])
def test_scores_reach_the_asked_auc(source, quality):
    trips = synthetic.generate(20_000, seed=5, source=source)
    scores = traffic.scored(trips, seed=1, quality=quality)
    assert scores.dtype == np.float32 and ((scores > 0) & (scores < 1)).all()
    big_tip = traffic.big_tip_labels(trips["tips"], trips["fare"]) == 1
    assert roc_auc_score(big_tip, scores) == pytest.approx(quality, abs=0.015)
    # Plausible probabilities: on average about the big-tip rate.
    assert abs(float(scores.mean()) - big_tip.mean()) < 0.1
    np.testing.assert_array_equal(scores, traffic.scored(trips, seed=1, quality=quality))
    assert not np.array_equal(scores, traffic.scored(trips, seed=2, quality=quality))


def test_quality_must_be_an_auc(frame):
    with pytest.raises(ValueError, match="strictly between"):
        traffic.scored(frame, seed=0, quality=1.0)
