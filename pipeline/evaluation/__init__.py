"""Evaluation and release: is the candidate better than what serves, and does it serve?

- eval_config.py: the TFMA EvalConfig (slices, metrics, thresholds from PipelineConfig);
- evaluator.py: the Evaluator component, whose executor evaluates in bulk (TFMA's path for other configs);
- bulk_evaluation.py: that bulk path: batched model calls, TFMA's writers, validator and artifacts;
- bulk_metrics.py: the EvalConfig's metrics and jackknife samples over all slices at once, with numpy;
- slice_floor.py: the per-slice AUC floor, only on slices with enough examples of each class;
- auc_change_bound.py: the change against the baseline judged on the upper end of its 95% interval;
- intervals.py: metric values with their intervals, how they read, which slices get none;
- blessing.py: the blessing decision and what decided it (metric, slice, value, threshold);
- servability_check.py: ServabilityCheck, the component that gates Pusher on serving;
- servability.py: its check (the candidate in serving/'s server, over gRPC and REST) and warmup records;
- atomic_pusher.py: the Pusher's executor: stage, rename, then record, so no server sees half a push;
- outcome.py: the evaluation, blessing and push lines a run prints at its end.
"""
