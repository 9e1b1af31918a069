"""The CLI's release command: walk a canary through traffic steps, then promote, hold or abort it."""
from __future__ import annotations

import argparse
import sys

from pipeline.config import PipelineConfig

HOLD_STATUS, ABORT_STATUS = 3, 4


def add_commands(commands, add_config_options) -> None:
    release = commands.add_parser(
        "release", help="canary release: move traffic step by step, promote or abort on evidence",
        description="Send a growing share (release_steps, e.g. 5,25,50,100 percent) of the model's requests "
                    "to the version labelled canary in the model config, through the model server's routing "
                    "file, shadowing it on stable's requests. At each step, once each arm has "
                    "release_min_requests requests, compare canary with stable: error rate (Fisher's exact "
                    "test), p99 latency (bootstrap), score distribution (population stability index, "
                    "chi-square test), agreement with stable on the same rows (shadow) and live AUC where "
                    "outcomes have arrived. A canary "
                    "worse beyond a threshold and beyond chance (release_alpha) is aborted: traffic goes back "
                    "to stable. Passing 100%% promotes it: the stable label moves to it. Too few requests "
                    "within release_step_minutes holds the release at that step; running the command again "
                    "resumes there. Every step and its evidence is recorded in ML Metadata (`runs`, "
                    "`lineage`). Exit status: 0 promoted, 3 held, 4 aborted, 2 could not run.")
    release.add_argument("--server", help="the model server's REST address (default: release_server, else http://127.0.0.1:8501)")
    release.add_argument("--model-config", dest="model_config",
                         help="the models.config the server polls (default: release_model_config, else "
                              "<output_root>/serving/models.config)")
    release.add_argument("--routing-file", dest="routing_file",
                         help="the routing file the server polls (default: release_routing_file, else "
                              "<output_root>/serving/routing.json)")
    release.add_argument("--steps", help="canary percentages, e.g. 5,25,50,100 (default: release_steps)")
    release.add_argument("--step-minutes", dest="step_minutes", type=float,
                         help="longest wait for enough requests per step (default: release_step_minutes)")
    release.add_argument("--poll-seconds", dest="poll_seconds", type=float, default=5.0,
                         help="how often to count the arms' requests while a step waits (default 5)")
    release.add_argument("--again", action="store_true",
                         help="start from the first step even if an earlier release of this canary ended "
                              "(promoted or aborted); the earlier steps stay recorded")
    add_config_options(release)
    release.set_defaults(handler=_release)


def _release(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline.release.evidence import EvidenceError
    from pipeline.release.release import ReleaseError, Settings, parse_steps, run_release
    from pipeline.release.release_record import ABORT, PROMOTE
    from pipeline.release.routing_file import RoutingFileError

    try:
        settings = Settings.from_config(config, server=args.server, model_config=args.model_config,
                                        routing_file=args.routing_file, step_minutes=args.step_minutes,
                                        poll_seconds=args.poll_seconds,
                                        steps=parse_steps(args.steps) if args.steps else None)
        result = run_release(config, settings, say=lambda line: print(line, flush=True), again=args.again)
    except (ReleaseError, EvidenceError, RoutingFileError) as error:
        print(f"taxi-pipeline release: {error}", file=sys.stderr)
        return 2
    return {PROMOTE: 0, ABORT: ABORT_STATUS}.get(result.verdict, HOLD_STATUS)
