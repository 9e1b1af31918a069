"""TFMA itself, with the pipeline's EvalConfig: the change against the baseline is judged on its interval.

Two models' probabilities are columns of the examples (TFMA's model-agnostic evaluation), so
TFMA's real Beam pipeline computes the jackknife intervals, the AUCChangeUpperBound metric
and the validation that decides the blessing, without training anything.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators.metrics_plots_and_validations_evaluator import (
    MetricsPlotsAndValidationsEvaluator,
)
from tensorflow_model_analysis.extractors import (
    example_weights_extractor,
    features_extractor,
    labels_extractor,
    materialized_predictions_extractor,
    slice_key_extractor,
    unbatch_extractor,
)
from tensorflow_model_analysis.utils import config_util
from tfx_bsl.tfxio import tf_example_record

from pipeline.config import PipelineConfig
from pipeline.evaluation import auc_change_bound, blessing, eval_config, outcome

pytestmark = pytest.mark.slow
CONFIG = PipelineConfig()  # max_auc_drop 0.0: with point values, any dip below the baseline blocks
ROWS = 4000


def _examples(path, candidate_noise: float, signal: float = 1.0, seed: int = 7) -> None:
    """Labels, slicing columns and two models' scores; the candidate is the baseline's score plus noise."""
    rng = np.random.default_rng(seed)
    label = (rng.random(ROWS) < 0.4).astype(np.float32)
    baseline = label * 1.5 + rng.normal(size=ROWS)
    candidate = label * 1.5 * signal + rng.normal(size=ROWS) + rng.normal(scale=candidate_noise, size=ROWS)
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    payment = np.where(rng.random(ROWS) < 0.5, "Cash", "Credit Card")
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(ROWS):
            features = {
                "label": tf.train.Feature(float_list=tf.train.FloatList(value=[label[i]])),
                "candidate_p": tf.train.Feature(float_list=tf.train.FloatList(value=[sigmoid(candidate[i])])),
                "baseline_p": tf.train.Feature(float_list=tf.train.FloatList(value=[sigmoid(baseline[i])])),
                "payment_type": tf.train.Feature(bytes_list=tf.train.BytesList(value=[payment[i].encode()])),
                "trip_start_hour": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3])),
                "company": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Flash Cab"])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def _extractors(evaluation: tfma.EvalConfig) -> list:
    """TFMA's extractors for predictions read from the examples (what default_extractors builds without a model;
    it and default_evaluators would drop the baseline of a model-agnostic pair, so they are built here)."""
    return [features_extractor.FeaturesExtractor(eval_config=evaluation),
            labels_extractor.LabelsExtractor(eval_config=evaluation),
            example_weights_extractor.ExampleWeightsExtractor(eval_config=evaluation),
            materialized_predictions_extractor.MaterializedPredictionsExtractor(eval_config=evaluation),
            unbatch_extractor.UnbatchExtractor(),
            slice_key_extractor.SliceKeyExtractor(eval_config=evaluation)]


def _evaluate(tmp_path, config: PipelineConfig, candidate_noise: float, signal: float = 1.0):
    """Runs TFMA as Evaluator does with a baseline; returns (validation, table, decision)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "eval.tfrecord"
    _examples(data, candidate_noise, signal)
    evaluation = eval_config.eval_config(config)
    del evaluation.model_specs[:]
    evaluation.model_specs.extend([
        tfma.ModelSpec(name="candidate", label_key="label", prediction_key="candidate_p"),
        tfma.ModelSpec(name="baseline", label_key="label", prediction_key="baseline_p", is_baseline=True)])
    out = tmp_path / "evaluation"
    # As Evaluator with a baseline does; run_model_analysis would take a model-agnostic pair for a first run.
    evaluation = config_util.update_eval_config_with_defaults(evaluation, has_baseline=True)
    source = tf_example_record.TFExampleRecord(file_pattern=str(data), raw_record_column_name=tfma.ARROW_INPUT_COLUMN)
    with beam.Pipeline() as pipeline:
        _ = (pipeline
             | "Read" >> source.BeamSource()
             | "ToExtracts" >> tfma.BatchedInputsToExtracts()
             | "Evaluate" >> tfma.ExtractAndEvaluate(extractors=_extractors(evaluation),
                                                     evaluators=[MetricsPlotsAndValidationsEvaluator(evaluation)])
             | "Write" >> tfma.WriteResults(writers=tfma.default_writers(str(out), eval_config=evaluation)))
    table = outcome.metrics_table(str(out))
    return tfma.load_validation_result(str(out)), table, blessing.decide(str(out), table, config)


@pytest.mark.timeout(900)
def test_a_dip_within_the_noise_is_not_blocked_and_a_shown_drop_is(tmp_path):
    # The same model with a little noise added: its AUC is a bit lower, by well under the interval's
    # half-width (with twice this noise the dip sat at the interval's edge, and TFMA buckets the
    # jackknife at random, so the bounds move a little per run).
    validation, table, decision = _evaluate(tmp_path / "dip", CONFIG, candidate_noise=0.15)
    change = table["overall"][("auc", True)]
    lower, upper = change.interval
    assert change < 0 < upper, f"the dip must be within the interval for this test: {change} [{lower}, {upper}]"
    assert validation.validation_ok and decision.blessed, decision
    # The bound Evaluator judged is the upper end of the interval it wrote.
    assert table["overall"][(auc_change_bound.NAME, True)] == pytest.approx(upper)
    [finding] = [f for f in decision.findings if f.metric == blessing.CHANGE]
    assert str(finding).startswith(f"AUC (change vs baseline) on overall = {change:+.4f} [{lower:+.4f}, {upper:+.4f}] "
                                   "meets upper end >= 0.0 (max_auc_drop 0.0, judged on the 95% interval); "
                                   "inconclusive"), str(finding)
    # AUC overall and on the slices carries an interval too.
    assert table["overall"][("auc", False)].interval is not None
    assert table["payment_type=Credit Card"][("auc", False)].interval is not None

    # A candidate that has lost most of its signal: the whole interval is below the baseline.
    validation, table, decision = _evaluate(tmp_path / "drop", CONFIG, candidate_noise=0.0, signal=0.5)
    assert table["overall"][("auc", True)].interval[1] < 0
    assert not validation.validation_ok and not decision.blessed
    assert str(decision.deciding).startswith("AUC (change vs baseline) on overall = -0.")
    assert "FAILS upper end >= 0.0 (max_auc_drop 0.0, judged on the 95% interval)" in str(decision.deciding)

