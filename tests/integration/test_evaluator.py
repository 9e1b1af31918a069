"""The pipeline's Evaluator executor: TFMA skips only the intervals it never writes.

The same examples and models-as-columns as test_blessing_on_evidence.py go through TFMA's
real Beam pipeline twice, with the jackknife seeded so both runs draw the same buckets:
once as TFMA ships, once inside `written_intervals_only()`. What is written (every point
value and every interval, on every slice) must be the same.
"""
from __future__ import annotations

import pickle

import apache_beam as beam
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators.metrics_plots_and_validations_evaluator import (
    MetricsPlotsAndValidationsEvaluator,
)
from tensorflow_model_analysis.metrics import metric_specs, metric_types
from tensorflow_model_analysis.utils import config_util
from tfx_bsl.tfxio import tf_example_record

from pipeline.config import PipelineConfig
from pipeline.evaluation import eval_config, evaluator
from tests.integration import test_blessing_on_evidence
from tests.integration.test_blessing_on_evidence import _examples, _extractors

pytestmark = pytest.mark.slow


def test_private_keys_are_skipped_and_the_set_survives_pickling():
    public = metric_types.MetricKey(name="auc", model_name="candidate")
    private = metric_types.MetricKey(name="_binary_confusion_matrices_1000", model_name="candidate")
    declared = metric_types.MetricKey(name="auc_change_upper_bound", is_diff=True)
    keys = evaluator.SkipIntervalKeys({declared})
    assert private in keys and declared in keys and public not in keys
    assert metric_types.MetricKey(name="__ERROR__") not in keys  # TFMA's own error key is not private
    assert keys and evaluator.SkipIntervalKeys()  # TFMA tests the set's truth before asking
    again = pickle.loads(pickle.dumps(keys))  # Beam ships it to its workers
    assert type(again) is evaluator.SkipIntervalKeys and private in again and declared in again
    # The switch is on only inside the context and TFMA's function is back after it.
    original = metric_specs.metric_keys_to_skip_for_confidence_intervals
    with evaluator.written_intervals_only():
        assert metric_specs.metric_keys_to_skip_for_confidence_intervals is not original
    assert metric_specs.metric_keys_to_skip_for_confidence_intervals is original


def _written(tmp_path) -> dict:
    """{(slice, metric key): (value, interval)} as TFMA writes them, with a seeded jackknife."""
    tmp_path.mkdir(parents=True)
    data = tmp_path / "eval.tfrecord"
    _examples(data, candidate_noise=0.15)
    evaluation = eval_config.eval_config(PipelineConfig())
    del evaluation.model_specs[:]
    evaluation.model_specs.extend([
        tfma.ModelSpec(name="candidate", label_key="label", prediction_key="candidate_p"),
        tfma.ModelSpec(name="baseline", label_key="label", prediction_key="baseline_p", is_baseline=True)])
    evaluation = config_util.update_eval_config_with_defaults(evaluation, has_baseline=True)
    source = tf_example_record.TFExampleRecord(file_pattern=str(data), raw_record_column_name=tfma.ARROW_INPUT_COLUMN)
    out = tmp_path / "evaluation"
    metrics_evaluator = MetricsPlotsAndValidationsEvaluator(evaluation, random_seed_for_testing=7)
    with beam.Pipeline() as pipeline:
        _ = (pipeline
             | "Read" >> source.BeamSource()
             | "ToExtracts" >> tfma.BatchedInputsToExtracts()
             | "Evaluate" >> tfma.ExtractAndEvaluate(extractors=_extractors(evaluation), evaluators=[metrics_evaluator])
             | "Write" >> tfma.WriteResults(writers=tfma.default_writers(str(out), eval_config=evaluation)))
    written = {}
    for slice_metrics in tfma.load_metrics(str(out)):
        for entry in slice_metrics.metric_keys_and_values:
            interval = (entry.confidence_interval.SerializeToString(deterministic=True)
                        if entry.HasField("confidence_interval") else None)
            written[(slice_metrics.slice_key.SerializeToString(deterministic=True),
                     entry.key.SerializeToString(deterministic=True))] = (
                entry.value.SerializeToString(deterministic=True), interval)
    return written


@pytest.mark.timeout(900)
def test_written_metrics_and_intervals_are_the_same_as_tfmas(tmp_path, monkeypatch):
    monkeypatch.setattr(test_blessing_on_evidence, "ROWS", 1500)  # every slice still gets its intervals
    as_shipped = _written(tmp_path / "tfma")
    with evaluator.written_intervals_only():
        skipping = _written(tmp_path / "pipeline")
    assert skipping.keys() == as_shipped.keys()
    differing = [key for key in as_shipped if skipping[key] != as_shipped[key]]
    assert not differing, f"{len(differing)} of {len(as_shipped)} written values differ, e.g. {differing[:3]}"
    with_interval = sum(1 for _, interval in as_shipped.values() if interval is not None)
    assert with_interval > len(as_shipped) / 2, "the public metrics must keep their intervals"
