"""CSV rows become tf.Examples and named features that agree on every value, typed by a
feature-type mapping or by a TFMD schema."""
import pytest
import tensorflow as tf

from models import features as F
from serving.clients.cli import main
from serving.clients.request_encoding import (
    SchemaError,
    example_to_json,
    feature_types_from_schema,
    row_to_example,
    rows_to_named_features,
)
from tests.conftest import SCHEMA

TYPES = F.feature_types()
ROW = {"fare": "12.45", "trip_start_hour": "19", "payment_type": "Credit Card", "company": "",
       "pickup_census_tract": "17031081500.0", "tips": "3.0"}


def test_example_holds_typed_features_and_no_label():
    features = row_to_example(ROW, TYPES).features.feature
    assert features["fare"].float_list.value == [tf.constant(12.45).numpy()]
    assert features["trip_start_hour"].int64_list.value == [19]
    assert features["pickup_census_tract"].int64_list.value == [17031081500]
    assert features["payment_type"].bytes_list.value == [b"Credit Card"]
    assert "company" not in features and "tips" not in features


def test_named_features_fill_empty_cells_with_defaults():
    columns = rows_to_named_features([ROW, {"fare": "3"}], TYPES)
    assert columns["company"] == ["", ""]
    assert columns["fare"] == [12.45, 3.0]
    assert columns["trip_start_hour"] == [19, 0]
    assert "tips" not in columns
    assert rows_to_named_features([{}], TYPES, {"fare": -1.0})["fare"] == [-1.0]


def test_an_unknown_feature_type_is_refused():
    with pytest.raises(ValueError, match="feature fare: type 'double'"):
        row_to_example(ROW, {"fare": "double"})


def test_json_examples_keep_number_kinds_and_b64_what_is_not_text():
    example = row_to_example({"fare": "3", "trip_start_hour": "19", "company": "Flash Cab"}, TYPES)
    example.features.feature["blob"].bytes_list.value.append(b"\xff")
    assert example_to_json(example) == {"fare": [3.0], "trip_start_hour": [19], "company": ["Flash Cab"],
                                        "blob": [{"b64": "/w=="}]}


def test_schema_gives_the_serving_features_and_their_types():
    types = feature_types_from_schema(str(SCHEMA))
    assert "tips" not in types  # not in the SERVING environment
    assert types["trip_start_timestamp"] == "int"  # in the schema though the model does not use it
    assert {name: types[name] for name in TYPES} == TYPES  # the model's own features, typed alike
    assert feature_types_from_schema(str(SCHEMA), environment="TRAINING")["tips"] == "float"


def test_schema_environments_and_deprecation(tmp_path):
    path = tmp_path / "schema.pbtxt"
    path.write_text('default_environment: "TRAINING"\ndefault_environment: "SERVING"\n'
                    'feature { name: "a" type: INT }\n'
                    'feature { name: "label" type: FLOAT not_in_environment: "SERVING" }\n'
                    'feature { name: "old" type: BYTES deprecated: true }\n'
                    'feature { name: "planned" type: BYTES lifecycle_stage: PLANNED }\n'
                    'feature { name: "extra" type: BYTES in_environment: "SERVING_ONLINE" }\n')
    # in_environment adds to the default environments, not_in_environment takes away.
    assert feature_types_from_schema(str(path)) == {"a": "int", "extra": "bytes"}
    assert feature_types_from_schema(str(path), "SERVING_ONLINE") == {"extra": "bytes"}
    path.write_text('feature { name: "a" type: FLOAT }\n')  # no environments: every feature serves
    assert feature_types_from_schema(str(path)) == {"a": "float"}


@pytest.mark.parametrize("text, message", [
    (None, "cannot read the schema {path}: No such file or directory"),
    ("feature { name: 'a' typ: INT }", "the schema {path} is not a text Schema proto: 1:"),
    (b"\xff\xfe", "the schema {path} is not a text Schema proto: not UTF-8 text"),
    ("", "the schema {path} has no features in environment SERVING"),
    ("feature { name: 'a' type: STRUCT }", "the schema {path}: feature a has type STRUCT"),
])
def test_a_bad_schema_is_a_one_line_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "schema.pbtxt"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(SchemaError) as error:
        feature_types_from_schema(str(path))
    assert str(error.value).startswith(message.format(path=path)) and "\n" not in str(error.value)


def test_client_command_reports_a_bad_schema_without_sending(tmp_path, capsys):
    missing = tmp_path / "missing.pbtxt"
    assert main([str(tmp_path / "rows.csv"), "--grpc", "127.0.0.1:1", "--schema", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"client: cannot read the schema {missing}") and "\n" not in err
