"""What a finished run prints about its evaluation, blessing, servability and push.

The metrics are a miniature Evaluator output (see conftest); `describe` reads a real ML Metadata store in
tmp_path in which the run's executions are recorded as LocalDagRunner records them.
"""
from __future__ import annotations

import os

import pytest
from tfx.types import standard_artifacts

from pipeline import artifacts
from pipeline.config import PipelineConfig
from pipeline.evaluation import outcome, servability
from pipeline.evaluation.intervals import Estimate
from tests.unit.pipeline.conftest import write_evaluation

CONFIG = PipelineConfig()


def row(auc, example_count, mean_label, **more):
    return {("auc", False): auc, ("example_count", False): example_count, ("mean_label", False): mean_label,
            **{(name, False): value for name, value in more.items()}}


def rows_for_evaluation(overall_auc=0.8, card_auc=0.62, diff=0.01):
    def r(auc, count, mean_label, auc_diff=0.0):
        return {"auc": auc, "example_count": count, "mean_label": mean_label, "auc_diff": auc_diff}
    return {(): r(overall_auc, 5000, 0.4, diff), (("trip_start_hour", 7),): r(0.7, 300, 0.4),
            (("payment_type", "Cash"),): r(0.0, 3000, 0.0), (("payment_type", "Credit Card"),): r(card_auc, 1700, 0.6),
            (("company", "Flash Cab"),): r(0.75, 400, 0.4), (("payment_type", "Cash"), ("trip_start_hour", 7)):
            r(0.0, 120, 0.0)}


def test_metric_lines_show_overall_then_the_gated_slices_lowest_auc_first():
    table = {
        "overall": {**row(0.81234, 5000, 0.4, precision=0.7, recall=0.6, calibration=1.02), ("auc", True): -0.0123},
        "payment_type=Cash": row(0.0, 3000, 0.0),
        "payment_type=Credit Card": row(0.6, 1700, 0.6),
        "trip_start_hour=7": row(0.7, 300, 0.4),
    }
    assert outcome._metric_lines(table, CONFIG) == [
        f"  {'overall':40s} AUC 0.8123, vs baseline -0.0123, precision 0.7000, recall 0.6000, calibration 1.0200, "
        "examples 5000",
        "  3 slices over trip_start_hour, payment_type, company; 2 have >= 50 examples of each class (gated, with "
        "intervals); the other 1 have too few of a class to gate or to give a meaningful interval; the lowest AUC:",
        f"  {'payment_type=Credit Card':40s} AUC 0.6000, examples 1700",
        f"  {'trip_start_hour=7':40s} AUC 0.7000, examples 300",
    ]


def test_metric_lines_show_the_intervals_of_auc_and_of_its_change():
    table = {"overall": {**row(Estimate(0.81234, (0.8, 0.82)), 5000, 0.4, precision=0.7),
                         ("auc", True): Estimate(-0.0123, (-0.02, -0.0046))},
             "payment_type=Credit Card": row(Estimate(0.6, (0.57, 0.63)), 1700, 0.6, calibration=float("nan"))}
    lines = outcome._metric_lines(table, CONFIG)
    assert lines[0] == (f"  {'overall':40s} AUC 0.8123 [0.8000, 0.8200], vs baseline -0.0123 [-0.0200, -0.0046], "
                        "precision 0.7000, examples 5000")
    assert lines[2] == (f"  {'payment_type=Credit Card':40s} AUC 0.6000 [0.5700, 0.6300], calibration undefined, "
                        "examples 1700")


def test_metrics_table_reads_the_intervals_evaluator_wrote(tmp_path):
    rows = rows_for_evaluation(overall_auc=0.8, diff=-0.004)
    rows[()].update(auc_interval=(0.79, 0.81), auc_diff_interval=(-0.012, 0.004))
    write_evaluation(tmp_path / "evaluation", rows, CONFIG)
    overall = outcome.metrics_table(str(tmp_path / "evaluation"))["overall"]
    assert overall[("auc", False)].interval == pytest.approx((0.79, 0.81))
    assert overall[("auc", True)].interval == pytest.approx((-0.012, 0.004))
    assert overall[("example_count", False)].interval is None


def test_metric_lines_show_at_most_the_requested_number_of_slices():
    table = {"overall": row(0.8, 5000, 0.4), **{f"company={n}": row(0.6 + n / 100, 400, 0.4) for n in range(8)}}
    lines = outcome._metric_lines(table, CONFIG, shown=3)
    assert [line.split()[0] for line in lines[2:]] == ["company=0", "company=1", "company=2"]
    assert "8 slices over" in lines[1] and "8 have >= 50" in lines[1]


def test_metric_lines_without_gated_slices_are_only_the_overall_line():
    table = {"overall": row(0.8, 5000, 0.4), "payment_type=Cash": row(0.0, 3000, 0.0)}
    assert outcome._metric_lines(table, CONFIG) == [f"  {'overall':40s} AUC 0.8000, examples 5000"]


def test_metrics_table_keeps_candidate_values_and_changes_but_not_the_baseline_model(tmp_path):
    write_evaluation(tmp_path / "evaluation", rows_for_evaluation(overall_auc=0.8, diff=0.03), CONFIG)
    table = outcome.metrics_table(str(tmp_path / "evaluation"))
    assert set(table) == {"overall", "trip_start_hour=7", "payment_type=Cash", "payment_type=Credit Card",
                          "company=Flash Cab", "payment_type=Cash, trip_start_hour=7"}
    assert table["overall"][("auc", False)] == pytest.approx(0.8)  # not the baseline's 0.77
    assert table["overall"][("auc", True)] == pytest.approx(0.03)
    assert table["payment_type=Credit Card"][("example_count", False)] == 1700


def artifact(kind, uri, **custom):
    made = kind()
    made.uri = str(uri)
    for name, value in custom.items():
        if isinstance(value, int):
            made.set_int_custom_property(name, value)
        else:
            made.set_string_custom_property(name, value)
    return made


def record_run(recorder, tmp_path, run_id="run-1", card_auc=0.62, servable=True, pushed=True, pusher_state="COMPLETE"):
    """DataReportGen, Evaluator, ServabilityCheck and Pusher of one run, with their outputs."""
    root = tmp_path / "pipeline"
    evaluation = root / "Evaluator" / "evaluation" / "5"
    write_evaluation(evaluation, rows_for_evaluation(card_auc=card_auc), CONFIG)
    blessed = int(card_auc >= CONFIG.min_slice_auc)
    recorder.execution(run_id, artifacts.DATA_REPORT_GEN, outputs={
        "report": [artifact(artifacts.DataReport, root / "DataReportGen" / "report" / "3")]})
    recorder.execution(run_id, artifacts.EVALUATOR, outputs={
        "evaluation": [artifact(standard_artifacts.ModelEvaluation, evaluation)],
        "blessing": [artifact(standard_artifacts.ModelBlessing, root / "Evaluator" / "blessing" / "5",
                              blessed=blessed)]})
    report = ("serving_default and serving_raw answered 3 requests" if servable
              else "serving_raw failed:\nInvalidArgumentError: fare must be float")
    recorder.execution(run_id, artifacts.SERVABILITY_CHECK, outputs={"blessing": [artifact(
        standard_artifacts.InfraBlessing, root / "ServabilityCheck" / "blessing" / "6",
        blessed=int(servable), **{servability.REPORT_PROPERTY: report})]})
    destination = str(tmp_path / "serving" / "taxi-tips" / "1795439358")
    pushed_model = (artifact(standard_artifacts.PushedModel, root / "Pusher" / "pushed_model" / "7", pushed=1,
                             pushed_destination=destination) if pushed
                    else artifact(standard_artifacts.PushedModel, root / "Pusher" / "pushed_model" / "7", pushed=0))
    recorder.execution(run_id, artifacts.PUSHER, state=pusher_state, outputs={"pushed_model": [pushed_model]})
    return destination


def test_describe_a_blessed_and_pushed_run(recorder, tmp_path):
    config = PipelineConfig(output_root=str(tmp_path))
    destination = record_run(recorder, tmp_path)
    result = outcome.describe(config, "run-1")
    assert (result.blessed, result.pushed_version) == (True, destination)
    lines = result.text.splitlines()
    report = os.path.join(str(tmp_path / "pipeline" / "DataReportGen" / "report" / "3"), artifacts.REPORT_FILE)
    assert lines[1] == f"Data report: {report}"
    assert lines[2] == "Evaluation (candidate model on the eval split):"
    assert lines[3].startswith("  overall") and "AUC 0.8000, vs baseline +0.0100" in lines[3]
    assert ("Thresholds: overall AUC >= 0.7; not shown to be more than 0.0 below the serving model (the newest "
            "push; skipped when there is none): blocked only when the whole 95% interval of the change lies below "
            "that; AUC >= 0.55 on every slice with >= 50 examples of each class.") in lines
    [verdict] = [line for line in lines if line.startswith("Blessing:")]
    assert verdict.startswith("Blessing: BLESSED, every threshold is met; closest: AUC (change vs baseline) on "
                              "overall = +0.0100 meets >= ")
    assert verdict.endswith("(max_auc_drop 0.0)")
    assert "Servability: OK, serving_default and serving_raw answered 3 requests" in lines
    assert lines[-1] == f"Pushed: {destination}"


def test_describe_a_run_a_slice_failed_names_the_slice_and_says_nothing_was_pushed(recorder, tmp_path):
    config = PipelineConfig(output_root=str(tmp_path))
    record_run(recorder, tmp_path, card_auc=0.5, pushed=False)
    result = outcome.describe(config, "run-1")
    assert (result.blessed, result.pushed_version) == (False, None)
    assert ("Blessing: NOT BLESSED, decided by: AUC on payment_type=Credit Card (1700 examples) = 0.5000 FAILS "
            ">= 0.55 (min_slice_auc, on slices with >= 50 examples of each class)") in result.text
    assert result.text.splitlines()[-1] == (f"Not pushed: the model was not blessed (Evaluator and servability "
                                            f"check); {config.serving_dir} is unchanged.")


def test_describe_shows_the_servability_report_of_a_model_that_does_not_serve(recorder, tmp_path):
    record_run(recorder, tmp_path, servable=False, pushed=False)
    text = outcome.describe(PipelineConfig(output_root=str(tmp_path)), "run-1").text
    assert ("Servability: FAILED, the model does not serve:\n  serving_raw failed:\n"
            "  InvalidArgumentError: fare must be float") in text


def test_describe_a_cached_push_says_the_model_was_already_pushed(recorder, tmp_path):
    destination = record_run(recorder, tmp_path, pusher_state="CACHED")
    result = outcome.describe(PipelineConfig(output_root=str(tmp_path)), "run-1")
    assert result.pushed_version == destination
    assert result.text.splitlines()[-1] == f"Nothing new to push: this model was already pushed as {destination}"


def test_describe_a_run_stopped_before_evaluation_has_no_blessing(recorder, tmp_path):
    recorder.execution("run-1", artifacts.DATA_GATE, state="FAILED")
    result = outcome.describe(PipelineConfig(output_root=str(tmp_path)), "run-1")
    assert (result.blessed, result.pushed_version) == (None, None)
    assert result.text == "\nEvaluation (candidate model on the eval split):"
