"""Batch prediction: score a span of unlabelled trips with a pushed model, as a Beam job.

Beam's RunInference with a model handler for the pushed SavedModel: each worker loads the
model once and sends batches of rows to its serving_default signature as serialized
tf.Examples, exactly what a TF Serving client sends. (TFX's BulkInferrer expects a Keras
or Estimator export with a predict signature of its own; this project's export is a plain
tf.Module with explicit signatures.) Each output line is the input row with the
probability appended.
"""
from __future__ import annotations

import csv
import glob
import io
import os
from typing import Any, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from models.signatures import OUTPUT_KEY
from pipeline import artifacts

OUTPUT_COLUMN = "tip_probability"


class SavedModelHandler(ModelHandler[dict, PredictionResult, Any]):
    """RunInference handler for the pushed SavedModel's serving_default signature."""

    def __init__(self, model_path: str):
        self.model_path = model_path

    def load_model(self):
        import tensorflow as tf
        return tf.saved_model.load(self.model_path)

    def run_inference(self, batch: Sequence[dict], model, inference_args: Optional[dict] = None
                      ) -> Iterable[PredictionResult]:
        import tensorflow as tf

        from models import features as F
        from serving.clients.request_encoding import serialized_examples

        examples = tf.constant(serialized_examples(batch, F.feature_types()))
        probabilities = model.signatures[artifacts.SERVING_DEFAULT](examples=examples)[OUTPUT_KEY].numpy().reshape(-1)
        return [PredictionResult(row, float(p)) for row, p in zip(batch, probabilities)]


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def predict_csv(model_path: str, input_pattern: str, output_path: str, beam_args: list[str] | None = None) -> int:
    """Score every row of the CSV files matching `input_pattern`; returns the row count."""
    files = sorted(glob.glob(input_pattern)) if "://" not in input_pattern else [input_pattern]
    if not files:
        raise ValueError(f"no CSV files match {input_pattern}")
    if not os.path.exists(os.path.join(model_path, "saved_model.pb")):
        raise ValueError(f"{model_path} is not a SavedModel version folder (no saved_model.pb)")
    with open(files[0], newline="") as handle:
        header = next(csv.reader(handle))
    columns = header + [OUTPUT_COLUMN]
    with beam.Pipeline(argv=beam_args or []) as pipeline:
        rows = (pipeline
                | "Read" >> beam.io.ReadFromText(input_pattern, skip_header_lines=1)
                | "Parse" >> beam.Map(lambda line: dict(zip(header, next(csv.reader([line]))))))
        _ = (rows
             | "Predict" >> RunInference(SavedModelHandler(model_path))
             | "Format" >> beam.Map(lambda result: _csv_line(
                 [result.example.get(name, "") for name in header] + [f"{result.inference:.6f}"]))
             | "Write" >> beam.io.WriteToText(output_path, shard_name_template="", header=_csv_line(columns)))
    with open(output_path) as handle:
        return sum(1 for _ in handle) - 1
