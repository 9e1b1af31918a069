"""Run models.preprocessing through tf.Transform directly, without TFX, for unit tests."""
from __future__ import annotations

import pathlib

import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from models import features as F
from models.preprocessing import preprocessing_fn

SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "schema" / "schema.pbtxt"
_EXTRA_TYPES = {F.LABEL_KEY: float, "trip_start_timestamp": int}


def rows_to_instances(rows: list[dict[str, str]]) -> list[dict[str, list]]:
    """CSV rows -> tf.Transform instance dicts (a list per feature, empty when the cell is)."""
    kinds = {feature.name: (str if feature.dtype == tf.string else int if feature.dtype == tf.int64 else float)
             for feature in F.FEATURES}
    kinds.update(_EXTRA_TYPES)
    instances = []
    for row in rows:
        instance = {}
        for name, kind in kinds.items():
            text = row.get(name, "")
            if text == "":
                instance[name] = []
            elif kind is str:
                instance[name] = [text.encode()]
            else:
                instance[name] = [kind(float(text)) if kind is int else float(text)]
        instances.append(instance)
    return instances


def analyze_and_transform(rows: list[dict[str, str]], work_dir: pathlib.Path,
                          transform_output_dir: pathlib.Path | None = None) -> list[dict]:
    """Transformed rows; with transform_output_dir, also writes the transform graph there."""
    metadata = dataset_metadata.DatasetMetadata(tfdv.load_schema_text(str(SCHEMA)))
    with tft_beam.Context(temp_dir=str(work_dir)):
        (transformed, _), transform_fn = (
            (rows_to_instances(rows), metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn))
        if transform_output_dir is not None:
            _ = transform_fn | tft_beam.WriteTransformFn(str(transform_output_dir))
            # TFX Transform also records the raw schema; serving signatures read it from there.
            metadata_io.write_metadata(metadata, str(transform_output_dir / tft.TFTransformOutput.RAW_METADATA_DIR))
    return transformed


def transformed_batch(rows: list[dict]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """Stack transformed rows into (features, label) tensors for the Keras model."""
    features = {feature.transformed_name: tf.constant([row[feature.transformed_name] for row in rows])
                for feature in F.MODEL_INPUTS}
    return features, tf.constant([row[F.TRANSFORMED_LABEL_KEY] for row in rows])


def load_transform_output(path: pathlib.Path) -> tft.TFTransformOutput:
    return tft.TFTransformOutput(str(path))
