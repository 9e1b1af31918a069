"""A small trained and exported taxi model, shared by the integration tests."""
import pathlib

import pytest
import tensorflow as tf

from models.model import Hyperparameters, build_model, train
from models.signatures import export
from serving.clients.request_encoding import read_csv_rows
from tests.tft_helpers import analyze_and_transform, load_transform_output, transformed_batch


@pytest.fixture(scope="session")
def exported_model_dir(tmp_path_factory, small_csv) -> pathlib.Path:
    """A SavedModel exported exactly as Trainer exports it, after 50 steps on 1,500 rows."""
    work = tmp_path_factory.mktemp("export")
    rows = list(read_csv_rows(str(small_csv)))
    transformed = analyze_and_transform(rows, work / "tmp", work / "transform")
    model = build_model(Hyperparameters())
    data = tf.data.Dataset.from_tensor_slices(transformed_batch(transformed)).batch(64).repeat()
    train(model, data, data, train_steps=50, eval_steps=5)
    export(model, load_transform_output(work / "transform"), str(work / "model"),
           metadata={"hyperparameters.json": "{}"})
    return work / "model"
