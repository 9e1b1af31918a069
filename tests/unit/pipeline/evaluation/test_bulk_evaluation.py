"""Which EvalConfigs the bulk Evaluator computes itself, and the pieces it computes them with.

That its numbers are TFMA's is shown end to end in tests/e2e/test_evaluator_floor.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tensorflow_model_analysis.proto import config_pb2
from tfx.types import standard_component_specs

from pipeline.config import PipelineConfig
from pipeline.evaluation import bulk_evaluation, bulk_metrics, eval_config, evaluator
from pipeline.runners import beam_profiles


def _config() -> tfma.EvalConfig:
    return tfma.utils.update_eval_config_with_defaults(eval_config.eval_config(PipelineConfig()), has_baseline=True,
                                                       rubber_stamp=True)


def test_the_pipelines_eval_config_is_computed_in_bulk():
    assert bulk_evaluation.unsupported(_config()) is None


@pytest.mark.parametrize("change, named", [
    (lambda c: c.metrics_specs[0].metrics.add(class_name="AUCPrecisionRecall"), "AUCPrecisionRecall"),
    (lambda c: setattr(c.metrics_specs[0].metrics[3], "config", '{"thresholds": [0.3]}'), "config"),
    (lambda c: c.options.confidence_intervals.__setattr__(
        "method", config_pb2.ConfidenceIntervalOptions.POISSON_BOOTSTRAP), "jackknife"),
    (lambda c: c.cross_slicing_specs.add(), "cross-slicing"),
    (lambda c: c.slicing_specs.add(feature_values={"payment_type": "Cash"}), "feature values"),
    (lambda c: setattr(c.model_specs[0], "example_weight_key", "fare"), "model spec"),
])
def test_anything_else_goes_to_tfma_with_the_reason(change, named):
    config = _config()
    change(config)
    reason = bulk_evaluation.unsupported(config)
    assert reason and named in reason


def test_slice_keys_are_sorted_by_feature_and_skip_examples_without_a_value():
    values = {"payment_type": np.array(["Cash", "Card", None, "Card"], dtype=object),
              "hour": np.array([3, 3, 4, 5], dtype=object)}
    example_index, slice_index, keys = bulk_metrics.slice_membership(
        values, [(), ("payment_type",), ("payment_type", "hour")], 4)
    members = {keys[s]: sorted(example_index[slice_index == s].tolist()) for s in range(len(keys))}
    assert members == {
        (): [0, 1, 2, 3],
        (("payment_type", "Card"),): [1, 3], (("payment_type", "Cash"),): [0],
        (("hour", 3), ("payment_type", "Card")): [1], (("hour", 5), ("payment_type", "Card")): [3],
        (("hour", 3), ("payment_type", "Cash")): [0]}


def test_feature_columns_decode_strings_and_leave_missing_values_none():
    def example(**features) -> bytes:
        made = tf.train.Example()
        for name, value in features.items():
            if isinstance(value, str):
                made.features.feature[name].bytes_list.value.append(value.encode())
            else:
                made.features.feature[name].int64_list.value.append(value)
        return made.SerializeToString()

    examples = np.array([example(company="A", hour=1), example(hour=2), example(company="B")], dtype=object)
    columns = bulk_evaluation.feature_columns(examples, ["company", "hour", "absent"])
    assert columns["company"].tolist() == ["A", None, "B"]
    assert columns["hour"].tolist() == [1, 2, None]
    assert columns["absent"].tolist() == [None, None, None]
    several = np.array([example(hour=1)], dtype=object)
    parsed = tf.train.Example.FromString(several[0])
    parsed.features.feature["hour"].int64_list.value.append(2)
    with pytest.raises(ValueError, match="hour has several values"):
        bulk_evaluation.feature_columns(np.array([parsed.SerializeToString()], dtype=object), ["hour"])


def test_jackknife_buckets_follow_content_not_position():
    examples = np.array([f"row {i}".encode() for i in range(2000)], dtype=object)
    buckets = bulk_evaluation.jackknife_buckets(examples)
    assert buckets.min() == 0 and buckets.max() == bulk_metrics.JACKKNIFE_BUCKETS - 1
    assert np.bincount(buckets).min() > 50  # spread over every bucket
    order = np.random.default_rng(0).permutation(len(examples))
    assert (bulk_evaluation.jackknife_buckets(examples[order]) == buckets[order]).all()


def test_a_slice_with_an_empty_sample_gets_no_interval():
    count = np.array([[40.0] + [38.0] * 20, [1.0] + [1.0] * 19 + [0.0]])
    assert bulk_metrics.complete_samples(count).tolist() == [True, False]


@pytest.mark.parametrize("profile, settings, in_process", [
    ("in_memory", {}, True),
    ("multi_processing", {"workers": 2}, True),
    ("flink", {"job_endpoint": "127.0.0.1:8099"}, False),
    ("dataflow", {"gcp_project": "p", "gcp_region": "r", "temp_location": "gs://b/tmp"}, False),
])
def test_a_cluster_runner_keeps_the_evaluation_on_tfma_and_beam(profile, settings, in_process):
    """The bulk path reads the eval split into the launcher's process: with a cluster runner the
    evaluation stays on that runner, with the DirectRunner it goes on to the other checks."""
    exec_properties = {standard_component_specs.EVAL_CONFIG_KEY: json_format.MessageToJson(_config())}
    _, reason = evaluator.bulk_plan({}, exec_properties, beam_profiles.beam_pipeline_args(profile, **settings))
    if in_process:
        assert reason == "examples that are not one artifact of tf.Examples"
    else:
        assert reason == "the Beam runner is not the DirectRunner: TFMA's evaluation runs on it"
