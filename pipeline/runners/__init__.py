"""The same pipeline on different orchestrators, and the Beam profiles its heavy steps run on.

- local_runner.py: TFX's LocalDagRunner with progress lines (progress.py) and the run's outcome;
- run_lock.py: one run at a time per output folder; no unrecorded version left in the serving folder;
- up_to_date.py: a local rerun with nothing changed since the last finished run stops at once;
- airflow_runner.py: the Airflow DAG builder and `run --runner airflow` (airflow dags test);
- airflow_dags/taxi_tips_dag.py: the DAG file to point Airflow's dags_folder at (beside the
  monitoring and release DAG files);
- release_dag.py: the release DAG builder (`<pipeline>-release`);
- kubeflow.py: `compile --target kubeflow`, a Kubeflow Pipelines v2 spec;
- beam_profiles.py: in_memory, multi_processing, flink, spark, dataflow as Beam arguments.
"""
