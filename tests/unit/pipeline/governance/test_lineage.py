"""`taxi-pipeline lineage VERSION`: how the walk from a pushed version back to its data is printed."""
from __future__ import annotations

import calendar
import json

from ml_metadata.proto import metadata_store_pb2

from pipeline.governance.lineage import Lineage, Step, format_lineage

RECORDED = calendar.timegm((2026, 1, 2, 3, 4, 5)) * 1000  # MLMD times are in milliseconds
VERSION = "1767323045"


def artifact(artifact_id: int, uri: str, properties: dict | None = None, **custom) -> metadata_store_pb2.Artifact:
    made = metadata_store_pb2.Artifact(id=artifact_id, uri=uri, create_time_since_epoch=RECORDED)
    for target, values in ((made.properties, properties or {}), (made.custom_properties, custom)):
        for name, value in values.items():
            if isinstance(value, int):
                target[name].int_value = value
            else:
                target[name].string_value = value
    return made


def step(execution_id: int, node: str) -> Step:
    return Step(metadata_store_pb2.Execution(id=execution_id), node)


def lineage_of(tmp_path, rolled_back_to: str = "") -> Lineage:
    """The artifacts and steps `trace` would collect for a version pushed by the pipeline (or by a rollback)."""
    model_dir = tmp_path / "Trainer" / "model" / "8"
    (model_dir / "Format-Serving" / "assets.extra").mkdir(parents=True)
    (model_dir / "Format-Serving" / "assets.extra" / "hyperparameters.json").write_text(
        json.dumps({"learning_rate": 0.02, "hidden_units": [64, 32]}))
    tuned_dir = tmp_path / "Tuner" / "best_hyperparameters" / "6"
    tuned_dir.mkdir(parents=True)
    (tuned_dir / "best_hyperparameters.txt").write_text(json.dumps({"space": [], "values": {"learning_rate": 0.02}}))
    extra = {"rolled_back_to": rolled_back_to} if rolled_back_to else {}
    pushed = artifact(12, f"/serving/taxi-tips/{VERSION}", pushed=1, pushed_version=VERSION,
                      pushed_destination=f"/serving/taxi-tips/{VERSION}", **extra)
    return Lineage(VERSION, pushed, [
        ("PushedModel", pushed, "Rollback" if rolled_back_to else "Pusher"),
        ("InfraBlessing", artifact(11, "/p/ServabilityCheck/blessing/10", blessed=1,
                                   servability_report="serving_default answered 3 requests"), "ServabilityCheck"),
        ("ModelBlessing", artifact(10, "/p/Evaluator/blessing/9", blessed=0), "Evaluator"),
        ("ModelEvaluation", artifact(9, "/p/Evaluator/evaluation/9"), "Evaluator"),
        ("Model", artifact(8, str(model_dir)), "Trainer"),
        ("HyperParameters", artifact(6, str(tuned_dir)), "Tuner"),
        ("Examples", artifact(3, "/p/CsvExampleGen/examples/2", {"span": 3, "split_names": '["train", "eval"]'},
                              lineage_spans="span-3 under /data/taxi"), "CsvExampleGen"),
        ("Examples", artifact(5, "/p/Transform/transformed_examples/4", {"split_names": '["train", "eval"]'}),
         "Transform"),
        ("ExampleStatistics", artifact(4, "/p/StatisticsGen/statistics/3"), ""),
    ], [step(2, "CsvExampleGen"), step(4, "Transform"), step(7, "Trainer"), step(9, "Evaluator"),
        step(11, "Pusher")])


def test_lineage_lists_what_serves_first_and_the_data_last_with_producer_and_location(tmp_path):
    lines = format_lineage(lineage_of(tmp_path)).splitlines()
    model_dir = tmp_path / "Trainer" / "model" / "8"
    tuned_dir = tmp_path / "Tuner" / "best_hyperparameters" / "6"
    assert lines == [
        f"Lineage of version {VERSION} (recorded 2026-01-02 03:04:05 UTC):",
        f"  pushed model           /serving/taxi-tips/{VERSION}  [Pusher, /serving/taxi-tips/{VERSION}]",
        "  servability            blessed (serving_default answered 3 requests)  "
        "[ServabilityCheck, /p/ServabilityCheck/blessing/10]",
        "  blessing               NOT blessed  [Evaluator, /p/Evaluator/blessing/9]",
        "  evaluation             [Evaluator, /p/Evaluator/evaluation/9]",
        f'  model                  trained with {{"hidden_units": [64, 32], "learning_rate": 0.02}}  '
        f"[Trainer, {model_dir}]",
        f'  tuned hyperparameters  tuned values {{"learning_rate": 0.02}}  [Tuner, {tuned_dir}]',
        "  statistics             [?, /p/StatisticsGen/statistics/3]",
        "  examples               transformed  [Transform, /p/Transform/transformed_examples/4]",
        '  examples               span 3 (read span-3 under /data/taxi), splits ["train", "eval"]  '
        "[CsvExampleGen, /p/CsvExampleGen/examples/2]",
        "  steps: Pusher#11 <- Evaluator#9 <- Trainer#7 <- Transform#4 <- CsvExampleGen#2",
    ]


def test_a_rolled_back_version_says_which_version_it_copies(tmp_path):
    text = format_lineage(lineage_of(tmp_path, rolled_back_to="1767225912"))
    assert (f"  pushed model           /serving/taxi-tips/{VERSION}, a copy of version 1767225912 made by rollback  "
            f"[Rollback, /serving/taxi-tips/{VERSION}]") in text.splitlines()


def test_a_model_without_its_hyperparameters_file_shows_only_its_location(tmp_path):
    lineage = lineage_of(tmp_path)
    (tmp_path / "Trainer" / "model" / "8" / "Format-Serving" / "assets.extra" / "hyperparameters.json").unlink()
    assert f"  model                  [Trainer, {tmp_path / 'Trainer' / 'model' / '8'}]" in \
        format_lineage(lineage).splitlines()


def test_examples_without_the_spans_read_show_span_and_splits(tmp_path):
    lineage = lineage_of(tmp_path)
    examples = next(a for name, a, node in lineage.artifacts if node == "CsvExampleGen")
    del examples.custom_properties["lineage_spans"]
    assert '  examples               span 3, splits ["train", "eval"]  [CsvExampleGen, /p/CsvExampleGen/examples/2]' \
        in format_lineage(lineage).splitlines()
