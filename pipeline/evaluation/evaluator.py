"""TFX's Evaluator executor, with TFMA's jackknife limited to the metrics it writes.

TFMA 0.47 computes the 95% intervals (eval_config.py says why the jackknife) by computing
every metric on each of the 20 leave-one-bucket-out samples, then the jackknife's mean and
spread for every key, including the private intermediates (names with one leading
underscore) that it drops before writing: behind AUC, the 1,000-threshold confusion
matrices, whose arithmetic is Python lists. In a profile at 10^5 rows that was a quarter of
the Evaluator's time, for values nobody reads.

TFMA already has the switch: the set of keys whose interval it skips
(`metric_keys_to_skip_for_confidence_intervals`, for metrics that declare
`compute_confidence_interval = False`). While this executor builds its Beam pipeline that
set also answers yes for private keys; the function is TFMA's module attribute, looked up
when the pipeline is built, and is put back after. Every point value is unchanged, and so is
how every written interval is computed: the public metrics' samples come from the same
merged accumulators as before.

The buckets stay TFMA's: each (slice, example) drawn at random, so interval bounds (and
auc_change_upper_bound, one of them) differ a little between two runs on the same rows. A
seed (TFMA's `random_seed_for_testing`) did not fix that: the draws follow the order Beam
hands the elements over, which is not the same from run to run.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from tensorflow_model_analysis.metrics import metric_specs
from tfx.components.evaluator import component as tfx_evaluator_component
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.dsl.components.base import executor_spec


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
        with written_intervals_only():
            super().Do(input_dict, output_dict, exec_properties)


class Evaluator(tfx_evaluator_component.Evaluator):
    """TFX's Evaluator component with the executor above (it takes no custom_executor_spec).
    Same name, so the node id, its ML Metadata context and its cache stay "Evaluator"."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
