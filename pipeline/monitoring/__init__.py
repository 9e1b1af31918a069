"""Live model quality after the push: `taxi-pipeline monitor` and the monitoring DAG.

- outcomes.py: the outcome feed (CSV files of request_id and the real tip, arriving late)
- logged_predictions.py: the request log's predictions of a time window, joined to outcomes by id
- live_quality.py: TFMA metrics on the joined predictions, per served version, label and slice
- serving_drift.py: the window's requests against the served version's training statistics
- triggers.py: the policy that starts a new run (decay, drift, volume, cooldown)
- capture.py: the window's labelled traffic written as the next span
- monitor_record.py: the window's results and decision in ML Metadata
- monitor_report.py: the JSON/HTML report and the Prometheus textfile
- pipeline_status.py: run outcomes, the data gate and the newest push as Prometheus series
- monitor.py: one monitoring pass, from the log to the decision
"""
