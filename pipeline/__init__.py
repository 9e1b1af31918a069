"""The taxi-tip TFX pipeline: settings, wiring, components by concern, runners and the command line.

At the top: pipeline.py (create_pipeline, wiring only), prepare.py (the file-system work
a definition needs, done once), config.py (PipelineConfig), resolvers.py (the three
resolver strategies), artifacts.py (artifact types and the node, split, file and
signature names), metadata.py (reading runs from ML Metadata). Then one folder per concern:

- ingest/: which spans a run reads, CsvCheck, the Arrow ExampleGen executor;
- data_validation/: statistics, drift/skew/volume measures, findings, DataGate, the data report;
- evaluation/: the TFMA config, slice floors, the blessing decision, ServabilityCheck;
- runners/: local (LocalDagRunner), Airflow (DAG in runners/airflow_dags/), Kubeflow, Beam profiles;
- governance/: runs, lineage, rollback, model cards, batch prediction;
- monitoring/: live quality from the request log and late outcomes, captured spans, triggers;
- release/: canary releases (traffic steps, the statistical comparison, promote or abort);
- cli/: `taxi-pipeline`.

How to add a component: see ingest/csv_check.py (a component) beside ingest/csv_rules.py
(its logic), then wire it in pipeline.py and name its node id in artifacts.py.
"""
import tf_environment  # noqa: F401  (before anything imports TensorFlow)
