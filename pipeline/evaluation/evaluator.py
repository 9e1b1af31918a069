"""TFX's Evaluator component with an executor that computes the EvalConfig's metrics in bulk.

For the pipeline's EvalConfig the executor scores every evaluation example in large batches
and computes every metric on every slice with numpy (bulk_evaluation.py), then writes the
ModelEvaluation artifact with TFMA's own writers and validator and the ModelBlessing as
TFX's executor does: same files, same keys, same blessing rule. At 10^5 evaluation rows
TFMA's per-example Beam evaluation took about 40 times as long as that work (issue #19).

Any EvalConfig it does not compute exactly (bulk_evaluation.unsupported() names why), a
custom extractor or model loader in the execution properties, or Beam arguments for a
cluster runner (the bulk path works in this process) goes to TFX's executor unchanged but
for one cut: TFMA's jackknife skips the private metrics it drops before writing.

The TFMA path's jackknife cut. TFMA 0.47 computes the 95% intervals by computing every
metric on each of the 20 leave-one-bucket-out samples, then the jackknife's mean and spread
for every key, including the private intermediates (names with one leading underscore):
behind AUC, the 1,000-threshold confusion matrices, whose arithmetic is Python lists. TFMA
already has the set of keys whose interval it skips (`metric_keys_to_skip_for_confidence_intervals`);
while the TFMA path builds its Beam pipeline that set also answers yes for private keys,
and TFMA's function is put back after. Every written value and interval is unchanged.
There TFMA draws each (slice, example)'s bucket at random, in the order Beam hands the
elements over, so its interval bounds differ a little between runs (a seed does not fix
it); the bulk path's buckets are a hash of each example, and reruns write the same bounds.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Iterator

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs
from tfx.components.evaluator import component as tfx_evaluator_component
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, path_utils, proto_utils

from pipeline.evaluation import bulk_evaluation
from pipeline.runners import beam_profiles

log = logging.getLogger(__name__)
# Execution properties that plug user code into TFX's executor: the bulk path has no place for it.
USER_CODE_PROPERTIES = (standard_component_specs.MODULE_FILE_KEY, standard_component_specs.MODULE_PATH_KEY)


def is_private(key: Any) -> bool:
    """TFMA's rule for metrics it drops before writing (one leading underscore, not two)."""
    name = getattr(key, "name", "")
    return name.startswith("_") and not name.startswith("__")


class SkipIntervalKeys(frozenset):
    """TFMA's set of keys without an interval, which also holds every private key.

    TFMA only asks `key in skip` after checking the set is not empty, so both are answered
    here. A class of this module, so Beam pickles it by reference (multi-process workers
    import it)."""

    def __contains__(self, key: object) -> bool:
        return frozenset.__contains__(self, key) or is_private(key)

    def __bool__(self) -> bool:
        return True

    def __reduce__(self):
        return (SkipIntervalKeys, (frozenset(self),))


@contextlib.contextmanager
def written_intervals_only() -> Iterator[None]:
    """While building the Evaluator's pipeline, TFMA skips the private keys' intervals."""
    original = metric_specs.metric_keys_to_skip_for_confidence_intervals
    metric_specs.metric_keys_to_skip_for_confidence_intervals = (
        lambda *args, **kwargs: SkipIntervalKeys(original(*args, **kwargs)))
    try:
        yield
    finally:
        metric_specs.metric_keys_to_skip_for_confidence_intervals = original


class Executor(tfx_evaluator.Executor):
    """TFX's Evaluator: same inputs, outputs, blessing and artifacts; see the module doc."""

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
        eval_config, reason = bulk_plan(input_dict, exec_properties, self._beam_pipeline_args)
        if reason:
            log.info("Evaluator: TFMA's own evaluation (%s)", reason)
            with written_intervals_only():
                super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        output_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        splits = json.loads(exec_properties.get(standard_component_specs.EXAMPLE_SPLITS_KEY) or "null") or ["eval"]
        split_uris = [uri for split in splits for uri in artifact_utils.get_split_uris(examples, split)]
        models = {}
        for spec in eval_config.model_specs:
            key = (standard_component_specs.BASELINE_MODEL_KEY if spec.is_baseline
                   else standard_component_specs.MODEL_KEY)
            model = artifact_utils.get_single_instance(input_dict[key])
            models[spec.name] = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        sliced_metrics = bulk_evaluation.evaluate(eval_config, split_uris, models)
        bulk_evaluation.write(output_uri, eval_config, models, ",".join(split_uris), sliced_metrics)
        log.info("Evaluation complete. Results written to %s.", output_uri)
        if tfma.metrics.metric_thresholds_from_metrics_specs(eval_config.metrics_specs, eval_config=eval_config):
            bless(input_dict, output_dict, exec_properties, output_uri)
        else:  # as TFX: no thresholds, no blessing (a model is never blessed by an empty check)
            log.info("No threshold configured, will not validate model.")


def bulk_plan(input_dict: dict[str, list], exec_properties: dict[str, Any],
              beam_pipeline_args: list[str]) -> tuple[Any, str | None]:
    """(the EvalConfig as TFX's executor completes it, None) when the bulk path computes this
    evaluation exactly; (None, why not) otherwise."""
    # The bulk path reads the whole eval split into this process. Beam arguments that name a
    # cluster runner (Flink, Spark, Dataflow) say the data belongs there: TFMA runs on it.
    if not beam_profiles.runs_on_direct_runner(beam_pipeline_args):
        return None, "the Beam runner is not the DirectRunner: TFMA's evaluation runs on it"
    if not exec_properties.get(standard_component_specs.EVAL_CONFIG_KEY):
        return None, "no eval_config (a feature_slicing_spec)"
    if any(exec_properties.get(name) for name in USER_CODE_PROPERTIES):
        return None, "a module file with custom extractors or model loading"
    examples = input_dict.get(standard_component_specs.EXAMPLES_KEY) or []
    if len(examples) != 1 or examples_utils.get_payload_format(examples[0]) != example_gen_pb2.FORMAT_TF_EXAMPLE:
        return None, "examples that are not one artifact of tf.Examples"
    has_baseline = bool(input_dict.get(standard_component_specs.BASELINE_MODEL_KEY))
    eval_config = tfma.EvalConfig()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY], eval_config)
    # As TFX's executor: defaults filled in, change thresholds dropped when there is no baseline.
    eval_config = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=has_baseline,
                                                              rubber_stamp=True)
    tfma.utils.verify_eval_config(eval_config)
    if not input_dict.get(standard_component_specs.MODEL_KEY) or len(eval_config.model_specs) > 2:
        return None, "no candidate model, or more than two models"
    reason = bulk_evaluation.unsupported(eval_config)
    return (None, reason) if reason else (eval_config, None)


def bless(input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any],
          evaluation_uri: str) -> None:
    """The ModelBlessing as TFX's executor writes it: TFMA's validation result decides, the models are named."""
    blessing = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
    model = input_dict[standard_component_specs.MODEL_KEY][0]
    blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if input_dict.get(standard_component_specs.BASELINE_MODEL_KEY):
        baseline = input_dict[standard_component_specs.BASELINE_MODEL_KEY][0]
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id)
    if "current_component_id" in exec_properties:
        blessing.set_string_custom_property("component_id", exec_properties["current_component_id"])
    blessed = tfma.load_validation_result(evaluation_uri).validation_ok
    io_utils.write_string_file(os.path.join(
        blessing.uri, constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME), "")
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                     constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE)
    log.info("Blessing result %s written to %s.", blessed, blessing.uri)


class Evaluator(tfx_evaluator_component.Evaluator):
    """TFX's Evaluator component with the executor above (it takes no custom_executor_spec).
    Same name, so the node id, its ML Metadata context and its cache stay "Evaluator"."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
