"""Which artifacts the pipeline's resolvers pick, against a real ML Metadata store in tmp_path.

The runs are recorded as the runners record them (see conftest): executions in `pipeline_run` and `node`
contexts (LocalDagRunner) or `run` and `component_run` contexts (TFX's Airflow runner), outputs as OUTPUT
events. Artifact ids come from the store, in the order the artifacts were recorded.
"""
from __future__ import annotations

import pytest
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.types import Channel, artifact_utils, standard_artifacts

from pipeline import artifacts, resolvers
from pipeline.resolvers import (
    BLESSING_KEY,
    CANDIDATE_KEY,
    CURRENT_KEY,
    HYPERPARAMETERS_KEY,
    MODEL_KEY,
    STATISTICS_KEY,
    BaselineBeforeCandidateStrategy,
    NewestTunedOrNoneStrategy,
    PreviousSpanStatisticsStrategy,
)


def ids(resolved: dict) -> dict[str, list[int]]:
    return {key: [a.id for a in value] for key, value in resolved.items()}


# Baseline: the model of the newest push (Pusher's or a rollback's) recorded before the candidate.

def train(recorder, run_id: str, blessed: bool | None) -> tuple:
    """A run whose Trainer made a model and whose Evaluator blessed it (or not, or never judged it: None)."""
    model = standard_artifacts.Model()
    model.uri = f"/pipeline/Trainer/model/{run_id}"
    recorder.execution(run_id, artifacts.TRAINER, outputs={"model": [model]})
    if blessed is None:
        return model, None
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = f"/pipeline/Evaluator/blessing/{run_id}"
    blessing.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    blessing.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(blessed))
    recorder.execution(run_id, artifacts.EVALUATOR, inputs={"model": [model]}, outputs={"blessing": [blessing]})
    return model, blessing


def push(recorder, run_id: str, blessing, servable: bool = True, version: int = 0, serving_dir=None):
    """The run's ServabilityCheck and Pusher as this pipeline wires them: Pusher's inputs are the two blessings,
    its PushedModel says `pushed=1` only when both blessed. With `serving_dir`, a version folder as well."""
    infra = standard_artifacts.InfraBlessing()
    infra.uri = f"/pipeline/ServabilityCheck/blessing/{run_id}"
    infra.set_int_custom_property("blessed", int(servable))
    recorder.execution(run_id, artifacts.SERVABILITY_CHECK, outputs={"blessing": [infra]})
    pushed = standard_artifacts.PushedModel()
    pushed.uri = f"/pipeline/Pusher/pushed_model/{run_id}"
    blessed = servable and blessing.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
    pushed.set_int_custom_property("pushed", int(blessed))
    if blessed:
        version = version or int(run_id.rsplit("-", 1)[-1])
        pushed.set_string_custom_property("pushed_version", str(version))
        if serving_dir is not None:
            destination = serving_dir / str(version)
            (destination / "variables").mkdir(parents=True)
            (destination / "saved_model.pb").write_bytes(b"")
            pushed.set_string_custom_property("pushed_destination", str(destination))
    recorder.execution(run_id, artifacts.PUSHER, inputs={"model_blessing": [blessing], "infra_blessing": [infra]},
                       outputs={"pushed_model": [pushed]})
    return pushed


def trained_and_pushed(recorder, run_id: str, serving_dir=None) -> tuple:
    model, blessing = train(recorder, run_id, blessed=True)
    push(recorder, run_id, blessing, serving_dir=serving_dir)
    return model, blessing


def baseline(recorder, candidates, models, blessings) -> dict:
    return BaselineBeforeCandidateStrategy().resolve_artifacts(recorder.store, {
        CANDIDATE_KEY: candidates, MODEL_KEY: models, BLESSING_KEY: [b for b in blessings if b is not None]})


def test_baseline_is_the_model_of_the_newest_push_older_than_the_candidate(recorder):
    first, first_blessing = trained_and_pushed(recorder, "run-1")
    second, second_blessing = train(recorder, "run-2", blessed=False)
    push(recorder, "run-2", second_blessing)  # Pusher ran, pushed nothing
    third, third_blessing = trained_and_pushed(recorder, "run-3")
    candidate, _ = train(recorder, "run-4", blessed=None)
    resolved = baseline(recorder, [candidate], [first, second, third, candidate],
                        [first_blessing, second_blessing, third_blessing])
    assert ids(resolved) == {MODEL_KEY: [third.id], BLESSING_KEY: [third_blessing.id], CANDIDATE_KEY: [candidate.id]}


def test_a_blessed_model_the_servability_check_rejected_is_not_the_baseline(recorder):
    served, served_blessing = trained_and_pushed(recorder, "run-1")
    unservable, unservable_blessing = train(recorder, "run-2", blessed=True)
    push(recorder, "run-2", unservable_blessing, servable=False)
    candidate, _ = train(recorder, "run-3", blessed=None)
    resolved = baseline(recorder, [candidate], [served, unservable, candidate], [served_blessing, unservable_blessing])
    assert ids(resolved) == {MODEL_KEY: [served.id], BLESSING_KEY: [served_blessing.id], CANDIDATE_KEY: [candidate.id]}


def test_a_blessed_model_never_pushed_is_not_the_baseline(recorder):
    # e.g. a run stopped after Evaluator: the newest blessed model, but nothing serves it.
    served, served_blessing = trained_and_pushed(recorder, "run-1")
    unpushed, unpushed_blessing = train(recorder, "run-2", blessed=True)
    candidate, _ = train(recorder, "run-3", blessed=None)
    resolved = baseline(recorder, [candidate], [served, unpushed, candidate], [served_blessing, unpushed_blessing])
    assert ids(resolved)[MODEL_KEY] == [served.id]


def test_a_model_rolled_back_away_from_is_not_the_baseline(recorder, tmp_path):
    from pipeline.config import PipelineConfig
    from pipeline.governance.rollback import rollback

    config = PipelineConfig(output_root=str(tmp_path))  # its metadata.db is the recorder's store
    serving_dir = tmp_path / "serving" / config.pipeline_name
    first, first_blessing = trained_and_pushed(recorder, "run-1", serving_dir=serving_dir)
    second, second_blessing = trained_and_pushed(recorder, "run-2", serving_dir=serving_dir)
    rollback(config, "1")  # version 2 was bad: version 1 serves again, as a copy
    candidate, _ = train(recorder, "run-3", blessed=None)
    models, blessings = [first, second, candidate], [first_blessing, second_blessing]
    assert ids(baseline(recorder, [candidate], models, blessings)) == {
        MODEL_KEY: [first.id], BLESSING_KEY: [first_blessing.id], CANDIDATE_KEY: [candidate.id]}
    # A rollback to a rollback's copy leads back to the same model.
    copy = max(int(p.name) for p in serving_dir.iterdir() if p.name.isdigit())
    rollback(config, "2")
    rollback(config, str(copy))
    later, _ = train(recorder, "run-4", blessed=None)
    assert ids(baseline(recorder, [later], models + [later], blessings))[MODEL_KEY] == [first.id]


def test_a_cached_candidate_keeps_its_baseline_after_its_own_push_and_a_rollback(recorder, tmp_path):
    # A re-run with nothing changed: the candidate is the model the last run pushed, so its
    # baseline must be the push before it, whatever happened since, or the run is not cached.
    from pipeline.config import PipelineConfig
    from pipeline.governance.rollback import rollback

    config = PipelineConfig(output_root=str(tmp_path))
    serving_dir = tmp_path / "serving" / config.pipeline_name
    first, first_blessing = trained_and_pushed(recorder, "run-1", serving_dir=serving_dir)
    second, second_blessing = trained_and_pushed(recorder, "run-2", serving_dir=serving_dir)
    models, blessings = [first, second], [first_blessing, second_blessing]
    assert ids(baseline(recorder, [second], models, blessings))[MODEL_KEY] == [first.id]
    rollback(config, "1")
    assert ids(baseline(recorder, [second], models, blessings)) == {
        MODEL_KEY: [first.id], BLESSING_KEY: [first_blessing.id], CANDIDATE_KEY: [second.id]}
    # The first run's candidate had nothing pushed before it, and still has not.
    assert ids(baseline(recorder, [first], models, blessings))[MODEL_KEY] == []


def test_no_push_yet_means_no_baseline(recorder):
    rejected, rejected_blessing = train(recorder, "run-1", blessed=False)
    push(recorder, "run-1", rejected_blessing)
    blessed, blessed_blessing = train(recorder, "run-2", blessed=True)
    push(recorder, "run-2", blessed_blessing, servable=False)
    candidate, _ = train(recorder, "run-3", blessed=None)
    resolved = baseline(recorder, [candidate], [rejected, blessed, candidate], [rejected_blessing, blessed_blessing])
    assert ids(resolved) == {MODEL_KEY: [], BLESSING_KEY: [], CANDIDATE_KEY: [candidate.id]}


def test_a_push_of_another_pipeline_in_the_same_store_is_not_the_baseline(recorder):
    from tests.unit.pipeline.conftest import Recorder

    ours, ours_blessing = trained_and_pushed(recorder, "run-1")
    other = Recorder(recorder.store, pipeline_name="fare-estimate")
    theirs, theirs_blessing = trained_and_pushed(other, "run-2")
    candidate, _ = train(recorder, "run-3", blessed=None)
    resolved = baseline(recorder, [candidate], [ours, theirs, candidate], [ours_blessing, theirs_blessing])
    assert ids(resolved)[MODEL_KEY] == [ours.id]


def test_baseline_is_looked_up_against_the_newest_candidate_the_airflow_runner_passes(recorder):
    # TFX's Airflow runner passes every model Trainer ever made on the candidate channel.
    first, first_blessing = trained_and_pushed(recorder, "run-1")
    second, second_blessing = trained_and_pushed(recorder, "run-2")
    candidate, _ = train(recorder, "run-3", blessed=None)
    everything = [candidate, first, second]
    resolved = baseline(recorder, everything, everything, [first_blessing, second_blessing])
    assert ids(resolved) == {MODEL_KEY: [second.id], BLESSING_KEY: [second_blessing.id],
                             CANDIDATE_KEY: [candidate.id]}


def test_baseline_without_a_candidate_resolves_to_nothing(recorder):
    model, blessing = trained_and_pushed(recorder, "run-1")
    assert baseline(recorder, [], [model], [blessing]) == {MODEL_KEY: [], BLESSING_KEY: [], CANDIDATE_KEY: []}


# Previous span: the newest earlier span's statistics whose run got through DataGate.

def span_statistics(span: int, splits=(artifacts.SPAN_SPLIT,)) -> standard_artifacts.ExampleStatistics:
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = f"/pipeline/SpanStatisticsGen/statistics/span-{span}-{'-'.join(splits)}"
    statistics.span = span
    statistics.split_names = artifact_utils.encode_split_names(list(splits))
    return statistics


def data_run(recorder, run_id: str, span: int, gate: str | None, reuse=None, airflow=False):
    """A run of span `span`: SpanStatisticsGen's statistics (new, or `reuse`d from cache), then DataGate's state."""
    statistics = reuse or span_statistics(span)
    recorder.execution(run_id, artifacts.SPAN_STATISTICS_GEN, state="CACHED" if reuse else "COMPLETE",
                       outputs={"statistics": [statistics]}, airflow=airflow)
    if gate is not None:
        recorder.execution(run_id, artifacts.DATA_GATE, state=gate, airflow=airflow)
    return statistics


def previous(recorder, every: list, current: list) -> dict:
    return PreviousSpanStatisticsStrategy().resolve_artifacts(recorder.store,
                                                             {STATISTICS_KEY: every, CURRENT_KEY: current})


def test_previous_span_is_the_newest_earlier_span_that_passed_the_gate(recorder):
    one = data_run(recorder, "run-1", 1, gate="COMPLETE")
    two = data_run(recorder, "run-2", 2, gate="COMPLETE")
    three = data_run(recorder, "run-3", 3, gate=None)  # this run: the resolver runs before DataGate
    assert ids(previous(recorder, [one, two, three], [three])) == {STATISTICS_KEY: [two.id], CURRENT_KEY: [three.id]}


def test_a_span_the_gate_stopped_is_skipped(recorder):
    one = data_run(recorder, "run-1", 1, gate="COMPLETE")
    two = data_run(recorder, "run-2", 2, gate="FAILED")
    three = data_run(recorder, "run-3", 3, gate=None)
    assert ids(previous(recorder, [one, two, three], [three]))[STATISTICS_KEY] == [one.id]


def test_a_span_whose_run_stopped_before_the_gate_is_skipped(recorder):
    one = data_run(recorder, "run-1", 1, gate="COMPLETE")
    two = data_run(recorder, "run-2", 2, gate=None)  # e.g. DriftSkewCheck failed: DataGate never ran
    three = data_run(recorder, "run-3", 3, gate=None)
    assert ids(previous(recorder, [one, two, three], [three]))[STATISTICS_KEY] == [one.id]


def test_a_stopped_span_counts_once_a_later_run_reusing_its_statistics_passed_the_gate(recorder):
    # Span 2 was stopped, then run again with the policy set to warn: SpanStatisticsGen came from the cache.
    one = data_run(recorder, "run-1", 1, gate="COMPLETE")
    two = data_run(recorder, "run-2", 2, gate="FAILED")
    data_run(recorder, "run-2-again", 2, gate="COMPLETE", reuse=two)
    three = data_run(recorder, "run-3", 3, gate=None)
    assert ids(previous(recorder, [one, two, three], [three]))[STATISTICS_KEY] == [two.id]


def test_a_cached_gate_counts_as_passed(recorder):
    one = data_run(recorder, "run-1", 1, gate="CACHED")
    two = data_run(recorder, "run-2", 2, gate=None)
    assert ids(previous(recorder, [one, two], [two]))[STATISTICS_KEY] == [one.id]


def test_no_earlier_span_means_drift_is_not_measured(recorder):
    first = data_run(recorder, "run-1", 1, gate=None)
    assert ids(previous(recorder, [first], [first])) == {STATISTICS_KEY: [], CURRENT_KEY: [first.id]}


def test_statistics_of_the_same_or_a_later_span_are_not_the_previous_span(recorder):
    # Re-running span 2 after span 3 was processed: span 3 is newer, and span 2's own statistics are no reference.
    one = data_run(recorder, "run-1", 1, gate="COMPLETE")
    two = data_run(recorder, "run-2", 2, gate="COMPLETE")
    three = data_run(recorder, "run-3", 3, gate="COMPLETE")
    two_again = data_run(recorder, "run-4", 2, gate=None)
    assert ids(previous(recorder, [one, two, three, two_again], [two_again]))[STATISTICS_KEY] == [one.id]


def test_statistics_gen_outputs_with_train_and_eval_splits_are_ignored(recorder):
    one = data_run(recorder, "run-1", 1, gate="COMPLETE")
    split_statistics = span_statistics(2, splits=(artifacts.TRAIN_SPLIT, artifacts.EVAL_SPLIT))
    recorder.execution("run-2", artifacts.STATISTICS_GEN, outputs={"statistics": [split_statistics]})
    recorder.execution("run-2", artifacts.DATA_GATE, state="COMPLETE")
    three = data_run(recorder, "run-3", 3, gate=None)
    assert ids(previous(recorder, [one, split_statistics, three], [split_statistics, three])) == {
        STATISTICS_KEY: [one.id], CURRENT_KEY: [three.id]}


def test_no_current_span_statistics_resolves_to_nothing(recorder):
    one = data_run(recorder, "run-1", 1, gate="COMPLETE")
    assert previous(recorder, [one], []) == {STATISTICS_KEY: [], CURRENT_KEY: []}


def test_airflow_runner_passing_every_span_statistics_as_current_uses_the_newest(recorder):
    one = data_run(recorder, "2026-01-01T00:00:00", 1, gate="COMPLETE", airflow=True)
    two = data_run(recorder, "2026-01-02T00:00:00", 2, gate="FAILED", airflow=True)
    three = data_run(recorder, "2026-01-03T00:00:00", 3, gate=None, airflow=True)
    everything = [three, one, two]
    assert ids(previous(recorder, everything, everything)) == {STATISTICS_KEY: [one.id], CURRENT_KEY: [three.id]}


# Tuned hyperparameters: the newest, or none.

def test_newest_tuned_hyperparameters_are_used(recorder):
    tuned = []
    for run in ("run-1", "run-2", "run-3"):
        hyperparameters = standard_artifacts.HyperParameters()
        hyperparameters.uri = f"/pipeline/Tuner/best_hyperparameters/{run}"
        recorder.execution(run, artifacts.TUNER, outputs={"best_hyperparameters": [hyperparameters]})
        tuned.append(hyperparameters)
    resolved = NewestTunedOrNoneStrategy().resolve_artifacts(recorder.store, {HYPERPARAMETERS_KEY: tuned[::-1]})
    assert ids(resolved) == {HYPERPARAMETERS_KEY: [tuned[-1].id]}


def test_never_tuned_resolves_to_no_hyperparameters_instead_of_failing(recorder):
    assert NewestTunedOrNoneStrategy().resolve_artifacts(recorder.store, {HYPERPARAMETERS_KEY: []}) == {
        HYPERPARAMETERS_KEY: []}
    assert NewestTunedOrNoneStrategy().resolve_artifacts(recorder.store, {}) == {HYPERPARAMETERS_KEY: []}


# Which strategy each runner gets.

def strategy(node: resolver.Resolver):
    return node.exec_properties[resolver.RESOLVER_STRATEGY_CLASS]


@pytest.mark.parametrize("kubeflow, expected, inputs", [
    (False, BaselineBeforeCandidateStrategy, {MODEL_KEY, BLESSING_KEY, CANDIDATE_KEY}),
    (True, LatestBlessedModelStrategy, {MODEL_KEY, BLESSING_KEY}),
])
def test_baseline_resolver_node(kubeflow, expected, inputs):
    node = resolvers.baseline_resolver(Channel(type=standard_artifacts.Model), kubeflow=kubeflow)
    assert node.id == artifacts.BASELINE_RESOLVER == "baseline_model_resolver"
    assert strategy(node) is expected
    assert set(node.raw_inputs) == inputs
    assert node.raw_inputs[MODEL_KEY].type is standard_artifacts.Model
    assert node.raw_inputs[BLESSING_KEY].type is standard_artifacts.ModelBlessing


@pytest.mark.parametrize("kubeflow, expected, inputs", [
    (False, PreviousSpanStatisticsStrategy, {STATISTICS_KEY, CURRENT_KEY}),
    (True, LatestArtifactStrategy, {STATISTICS_KEY}),
])
def test_previous_span_resolver_node(kubeflow, expected, inputs):
    current = Channel(type=standard_artifacts.ExampleStatistics)
    node = resolvers.previous_span_resolver(current, kubeflow=kubeflow)
    assert node.id == artifacts.PREVIOUS_SPAN_RESOLVER == "previous_span_resolver"
    assert strategy(node) is expected
    assert set(node.raw_inputs) == inputs
    assert node.raw_inputs[STATISTICS_KEY].type is standard_artifacts.ExampleStatistics


@pytest.mark.parametrize("kubeflow, expected", [(False, NewestTunedOrNoneStrategy), (True, LatestArtifactStrategy)])
def test_tuned_hyperparameters_resolver_node(kubeflow, expected):
    node = resolvers.tuned_hyperparameters_resolver(kubeflow=kubeflow)
    assert node.id == artifacts.TUNED_HYPERPARAMETERS_RESOLVER == "tuned_hyperparameters_resolver"
    assert strategy(node) is expected
    assert set(node.raw_inputs) == {HYPERPARAMETERS_KEY}
    assert node.raw_inputs[HYPERPARAMETERS_KEY].type is standard_artifacts.HyperParameters
