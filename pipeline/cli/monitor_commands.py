"""The CLI's monitor command: live quality from the request log and late outcomes, and retraining."""
from __future__ import annotations

import argparse
import sys

from pipeline.config import PipelineConfig


def _time(text: str) -> float:
    """Unix seconds or ISO 8601 (UTC when no zone is given), as outcome files give times."""
    from pipeline.monitoring.outcomes import iso_seconds

    try:
        return float(text)
    except ValueError:
        pass
    seconds = iso_seconds(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give Unix seconds or an ISO time like 2026-12-01T10:00:00Z")
    return seconds


def add_commands(commands, add_config_options) -> None:
    monitor = commands.add_parser(
        "monitor", help="live quality of the served model from late outcomes; capture data; trigger a run",
        description="Join the model server's request log (request_log) with the outcome files in "
                    "outcomes_root by request id, over the requests of the last monitor_window_hours, and "
                    "compute live AUC, precision, recall, calibration and counts with TFMA per served "
                    "version, label and Evaluator slice, with label coverage and the newest outcome's age, "
                    "and the serving drift of the window's requests against the served version's training "
                    "data by the schema's skew comparators (monitor_serving_drift). "
                    "Writes an HTML/JSON report and Prometheus textfiles under <output_root>/monitoring "
                    "(live_quality.prom; pipeline.prom: run outcomes, data gate, last push), "
                    "records the pass in ML Metadata (shown by `runs` and `lineage`), writes the window's "
                    "labelled traffic as the next span of data_root (capture_spans), and decides whether a "
                    "new run should start (live_min_slice_auc, live_max_auc_drop, trigger_on_serving_drift, "
                    "trigger_min_new_rows, trigger_cooldown_hours). Exit status: 0, or 3 when the decision "
                    "is to trigger and --trigger was not given (for schedulers).")
    monitor.add_argument("--trigger", action="store_true",
                         help="start the pipeline run (locally, under the run lock) when the decision is to trigger")
    monitor.add_argument("--hours", type=float, help="window length (default: monitor_window_hours)")
    monitor.add_argument("--end", type=_time, help="window end, Unix seconds or ISO time (default: now)")
    add_config_options(monitor)
    monitor.set_defaults(handler=_monitor)
    replay = commands.add_parser(
        "replay", help="send labelled trips to a model server as live traffic and write their outcomes",
        description="Send each row of CSV files (a span with tips, e.g. from `generate --tip-change`) to a "
                    "model server with a request id, without its tip, then write the tips as outcome files "
                    "keyed by those ids: the traffic and the late outcomes `monitor` joins.")
    replay.add_argument("csv", nargs="+", help="CSV files with the training header (tips included)")
    endpoint = replay.add_mutually_exclusive_group(required=True)
    endpoint.add_argument("--rest", metavar="URL", help="e.g. http://127.0.0.1:8501")
    endpoint.add_argument("--grpc", metavar="HOST:PORT", help="e.g. 127.0.0.1:8500")
    replay.add_argument("--model", help="model name (default: pipeline_name)")
    replay.add_argument("--label", help="version label to address, e.g. stable")
    replay.add_argument("--limit", type=int, default=0, help="rows to send (default 0: all)")
    replay.add_argument("--batch", type=int, default=100, help="rows per request (default 100)")
    replay.add_argument("--outcomes", help="folder the outcome files go to (default: outcomes_root)")
    replay.add_argument("--outcome-share", type=float, default=1.0,
                        help="share of rows whose outcome ever arrives (default 1.0)")
    replay.add_argument("--outcome-parts", type=int, default=1,
                        help="outcome files to write, each observed a minute after the one before (default 1)")
    add_config_options(replay)
    replay.set_defaults(handler=_replay)


def _monitor(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline.monitoring.monitor import run_monitor
    from pipeline.monitoring.monitor_record import note_run_started
    from pipeline.monitoring.outcomes import OutcomeError

    try:
        result = run_monitor(config, hours=args.hours, end=args.end)
    except (OutcomeError, ValueError, OSError) as error:
        print(f"taxi-pipeline monitor: {error}", file=sys.stderr)
        return 2
    print("\n".join(result.lines), flush=True)
    if not result.decision.fire:
        return 0
    if not args.trigger:
        print("not started (no --trigger); `taxi-pipeline run` or the training DAG starts it", flush=True)
        return 3
    from pipeline.runners.local_runner import run_local
    from pipeline.runners.run_lock import RunLockedError

    print("starting a pipeline run", flush=True)
    try:
        run = run_local(config, out=sys.stdout)
    except RunLockedError as error:
        note_run_started(config.metadata_path, result.execution_id, f"not started: {error}")
        print(f"not started: {error}", flush=True)
        return 0
    text = (f"run {run.run_id}: pushed {run.pushed_version.rstrip('/').rsplit('/', 1)[-1]}" if run.pushed_version
            else f"run {run.run_id}: {'succeeded, nothing pushed' if run.succeeded else 'FAILED'}")
    note_run_started(config.metadata_path, result.execution_id, text)
    print(f"triggered {text}", flush=True)
    return 0 if run.succeeded else 1


def _replay(args: argparse.Namespace, config: PipelineConfig) -> int:
    import pathlib

    from pipeline.monitoring.replay import replay_rows, write_outcome_files
    from serving.clients import GrpcClient, RestClient
    from serving.clients.request_encoding import feature_types_from_schema, read_csv_rows

    try:
        rows = [row for path in args.csv for row in read_csv_rows(path)]
    except (OSError, UnicodeDecodeError) as error:
        print(f"taxi-pipeline replay: cannot read {error.filename or args.csv}: {error}", file=sys.stderr)
        return 2
    rows = rows[:args.limit] if args.limit else rows
    model = args.model or config.pipeline_name
    # Every SERVING feature of the schema, not only the model's inputs: the captured span needs them all.
    types = feature_types_from_schema(config.schema_path)
    client = (RestClient(args.rest, model, types, version_label=args.label) if args.rest
              else GrpcClient(args.grpc, model, types, version_label=args.label))
    try:
        ids = replay_rows(client, rows, args.batch, progress=sys.stdout)
        paths = write_outcome_files(pathlib.Path(args.outcomes or config.outcomes_dir), rows, ids,
                                    args.outcome_parts, args.outcome_share)
    except Exception as error:  # a refused request or an unreachable server: one line, not a traceback
        print(f"taxi-pipeline replay: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"replayed {len(ids)} rows to {args.rest or args.grpc}; outcomes: {', '.join(map(str, paths))}")
    return 0
