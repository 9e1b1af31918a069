"""CSV rows become tf.Examples and named features that agree on every value."""
import tensorflow as tf

from serving.examples import row_to_example, rows_to_named_features

ROW = {"fare": "12.45", "trip_start_hour": "19", "payment_type": "Credit Card", "company": "",
       "pickup_census_tract": "17031081500.0", "tips": "3.0"}


def test_example_holds_typed_features_and_no_label():
    features = row_to_example(ROW).features.feature
    assert features["fare"].float_list.value == [tf.constant(12.45).numpy()]
    assert features["trip_start_hour"].int64_list.value == [19]
    assert features["pickup_census_tract"].int64_list.value == [17031081500]
    assert features["payment_type"].bytes_list.value == [b"Credit Card"]
    assert "company" not in features and "tips" not in features


def test_named_features_fill_empty_cells_with_defaults():
    columns = rows_to_named_features([ROW, {"fare": "3"}])
    assert columns["company"] == ["", ""]
    assert columns["fare"] == [12.45, 3.0]
    assert columns["trip_start_hour"] == [19, 0]
    assert "tips" not in columns
