"""preprocessing_fn through tft_beam.AnalyzeAndTransformDataset on hand-made rows."""
import numpy as np
import pytest

from models import features as F
from tests.tft_helpers import analyze_and_transform

ROWS = [
    # fare, tips, payment_type, company, hour: chosen so each expected output is easy to check.
    {"fare": "10.0", "tips": "3.0", "payment_type": "Credit Card", "company": "Flash Cab", "trip_start_hour": "8"},
    {"fare": "10.0", "tips": "1.0", "payment_type": "Cash", "company": "Flash Cab", "trip_start_hour": "8"},
    {"fare": "20.0", "tips": "0.0", "payment_type": "Cash", "company": "", "trip_start_hour": "9"},
    {"fare": "40.0", "tips": "8.5", "payment_type": "Cash", "company": "Flash Cab", "trip_start_hour": "8"},
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    rows = [dict(row, trip_miles="1.5", trip_start_day="3", trip_start_month="5") for row in ROWS]
    return analyze_and_transform(rows, tmp_path_factory.mktemp("tft"))


def test_label_is_tip_over_twenty_percent_of_fare(transformed):
    # 3 > 2 yes; 1 > 2 no; 0 > 4 no; 8.5 > 8 yes
    assert [row[F.TRANSFORMED_LABEL_KEY] for row in transformed] == [1, 0, 0, 1]


def _z(values):
    values = np.asarray(values, np.float64)
    return (values - values.mean()) / values.std()


def test_fare_is_log_scaled_to_zero_mean_unit_variance(transformed):
    # log1p first: one $700 fare must not squash every ordinary fare to the same value.
    fares = np.array([row["fare_xf"] for row in transformed])
    np.testing.assert_allclose(fares, _z(np.log1p([10, 10, 20, 40.0])), rtol=1e-4)


def test_fare_per_mile_is_a_log_scaled_ratio(transformed):
    # Every row has 1.5 miles: the ratio orders the rows as the fares do.
    per_mile = np.array([row["fare_per_mile_xf"] for row in transformed])
    np.testing.assert_allclose(per_mile, _z(np.log1p(np.array([10, 10, 20, 40.0]) / 1.5)), rtol=1e-4)


def test_crosses_give_one_id_per_combination(transformed):
    # (card, Flash Cab), (cash, Flash Cab), (cash, empty), (cash, Flash Cab)
    ids = [row["payment_company_xf"] for row in transformed]
    assert ids[1] == ids[3] and len({ids[0], ids[1], ids[2]}) == 3
    size = F.DERIVED_BY_NAME["payment_company"].size
    assert all(0 <= value < size for value in ids)
    # Cash at 8 and at 9 o'clock are different ids; the two cash trips at 8 are one.
    hours = [row["payment_hour_xf"] for row in transformed]
    assert hours[1] == hours[3] != hours[2]


def test_cross_sizes_cover_their_sources():
    for feature in F.DERIVED_FEATURES:
        if feature.recipe == "cross":
            assert feature.size == np.prod([F.id_count(name) for name in feature.sources]), feature.name


def test_vocabulary_ids_follow_frequency(transformed):
    # Cash is the most frequent payment type, so it gets id 0.
    assert [row["payment_type_xf"] for row in transformed] == [1, 0, 0, 0]
    # The company seen three times gets id 0, the empty cell (filled with "") id 1.
    assert [row["company_xf"] for row in transformed] == [0, 0, 1, 0]


def test_small_integer_codes_are_their_own_ids(transformed):
    assert [row["trip_start_hour_xf"] for row in transformed] == [8, 8, 9, 8]
    assert {row["trip_start_month_xf"] for row in transformed} == {5}


def test_missing_values_get_the_feature_default(transformed):
    # The empty company cell and the absent pickup_latitude column are filled, not dropped.
    company_ids = [row["company_xf"] for row in transformed]
    assert company_ids[0] == company_ids[1] == company_ids[3] != company_ids[2]
    assert len({row["pickup_latitude_xf"] for row in transformed}) == 1


def test_every_model_input_is_produced(transformed):
    expected = {feature.transformed_name for feature in F.MODEL_INPUTS} | {F.TRANSFORMED_LABEL_KEY}
    assert set(transformed[0]) == expected


def _transformed_in_batches_of(rows: list[dict], batch_size: int, work_dir) -> list[dict]:
    import tensorflow_data_validation as tfdv
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata

    from models.preprocessing import preprocessing_fn
    from tests.tft_helpers import SCHEMA, rows_to_instances

    metadata = dataset_metadata.DatasetMetadata(tfdv.load_schema_text(str(SCHEMA)))
    with tft_beam.Context(temp_dir=str(work_dir), desired_batch_size=batch_size):
        (transformed, _), _ = ((rows_to_instances(rows), metadata)
                               | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn))
    return transformed


def test_z_scores_do_not_depend_on_how_the_rows_are_batched(tmp_path):
    """Beam sizes Transform's batches by how long they take; the statistics must not follow the batches.

    With the statistics in float32 (tft.scale_to_z_score on float32), batches of 7 and of 1000
    gave values up to 5e-7 apart on these rows, and a model trained on them another AUC.
    """
    rng = np.random.default_rng(0)
    rows = [{"fare": f"{rng.lognormal(2.3, 0.8):.2f}", "trip_miles": f"{rng.lognormal(1, 1):.2f}",
             "trip_seconds": str(int(rng.lognormal(6.5, 0.7))), "tips": "1.0", "payment_type": "Cash",
             "company": "Flash Cab", "trip_start_hour": "8", "trip_start_day": "3", "trip_start_month": "5"}
            for _ in range(3000)]
    small = _transformed_in_batches_of(rows, 7, tmp_path / "small")
    large = _transformed_in_batches_of(rows, 1000, tmp_path / "large")
    for feature in F.MODEL_INPUTS:
        if F.is_numeric(feature):
            name = feature.transformed_name
            assert [row[name] for row in small] == [row[name] for row in large], name
