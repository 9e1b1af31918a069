"""Data validation: is the data fit to train on? Checks, measures, the gate that acts on them, the report.

Components (each module named after its component):
- span_statistics_gen.py: SpanStatisticsGen, the newest span's statistics, kept in ML Metadata;
- drift_skew_check.py: DriftSkewCheck, drift vs the previous span and skew vs serving data;
- inferred_schema_gen.py: InferredSchemaGen, the schema TFDV infers, shown beside the curated one;
- data_report_gen.py: DataReportGen, the offline HTML report;
- data_gate.py: DataGate, stops the run on the findings the policy stops on.

Their logic:
- drift.py: the drift, skew and volume measures and distances.json. Their thresholds are in
  schema/schema.pbtxt: each feature's drift_comparator and skew_comparator, and the
  dataset's num_examples_drift_comparator for volume;
- span_rules.py: rules on the newest span the schema cannot state (time validity: the data's
  start, the clock, the previous span, derived time columns; repeated rows), checked with
  TFDV's custom validations; row_measures.py: the row-level measures they need, taken by a
  TFDV generator in SpanStatisticsGen's pass;
- findings.py: anomalies, measures over threshold and failed rules as findings, and the stop/warn policy;
- data_report.py: the report's HTML; schema_diff.py: curated vs inferred schema (and `schema-diff`);
- serving_data.py: statistics of serving data (CSV or the model server's request log);
- statistics_io.py: reading and writing statistics and schemas, TFDV's options.
"""
