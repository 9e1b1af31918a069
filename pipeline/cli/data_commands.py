"""The CLI's data commands: generate (synthetic spans) and schema-diff."""
from __future__ import annotations

import argparse
import pathlib
import sys

from pipeline.config import REPO_ROOT, PipelineConfig

SHIPPED_SPANS = REPO_ROOT / "data" / "taxi"


def add_commands(commands, add_config_options) -> None:
    generate = commands.add_parser(
        "generate", help="write synthetic spans of any size that follow the shipped data",
        description="Write span-<N>/data.csv folders of synthetic taxi trips under --out, fitted to the "
                    "shipped spans (same header, types, missing-value rates, category frequencies, and "
                    "the tip/payment/fare structure the model learns). The same --seed gives the same "
                    "bytes. Point the pipeline at them with --set data_root=OUT. --payment-mix and "
                    "--fare-scale make drifted spans for testing the data gate and drift checks.")
    generate.add_argument("--rows", type=lambda text: int(float(text)), required=True,
                          help="rows per span, e.g. 10000 or 1e6")
    generate.add_argument("--out", required=True, type=pathlib.Path, help="folder to write span-<N>/ folders into")
    generate.add_argument("--spans", type=int, default=1, help="how many span folders to write (default 1)")
    generate.add_argument("--first-span", type=int, default=1, help="number of the first span folder (default 1)")
    generate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    generate.add_argument("--payment-mix", default="", metavar="TYPE=SHARE,...",
                          help="drift: payment type shares, e.g. 'Cash=0.2,Credit Card=0.75'; unnamed types share "
                               "the rest in their shipped proportions; an unseen type (Bitcoin=0.01) is allowed")
    generate.add_argument("--fare-scale", type=float, default=1.0,
                          help="drift: multiply fares and tips by this (default 1.0; the big-tip rate is unchanged)")
    generate.add_argument("--tip-change", default="", metavar="PAYMENT[@HOURS]",
                          help="concept drift: riders paying this way (at these hours, e.g. 'Credit Card@17-23') "
                               "tip big on long trips (fare >= $10) only; the features look as before")
    generate.add_argument("--source", type=pathlib.Path, default=SHIPPED_SPANS,
                          help=f"span folders to fit the generator to (default {SHIPPED_SPANS})")
    generate.set_defaults(handler=_generate)
    schema_diff = commands.add_parser(
        "schema-diff", help="show how a span's data differs from the curated schema",
        description="Infer a schema from one span's CSV files (types from the data itself) and print "
                    "how it differs from schema_path: features added or gone, types, required features "
                    "with missing values, values outside a curated domain. Review the lines, then accept "
                    "a change by editing schema/schema.pbtxt (see schema/README.md). Exit status 1 when "
                    "there are differences.")
    schema_diff.add_argument("--span", type=int, help="span number (default: the newest span in data_root)")
    add_config_options(schema_diff)
    schema_diff.set_defaults(handler=_schema_diff)


def _generate(args: argparse.Namespace, config: None) -> int:
    from data import synthetic

    try:
        mix = synthetic.parse_payment_mix(args.payment_mix)
        tip_change = synthetic.parse_tip_change(args.tip_change)
        if args.spans < 1:
            raise ValueError(f"--spans must be at least 1, not {args.spans}")
        synthetic.write_spans(args.out, args.rows, args.spans, args.first_span, args.seed, mix, args.fare_scale,
                              args.source, progress=sys.stdout, tip_change=tip_change)
    except (ValueError, OSError) as error:
        print(f"taxi-pipeline generate: {error}", file=sys.stderr)
        return 2
    return 0


def _schema_diff(args: argparse.Namespace, config: PipelineConfig) -> int:
    from pipeline.data_validation.schema_diff import diff_span
    from pipeline.data_validation.statistics_io import load_schema
    from pipeline.ingest.csv_rules import CsvError
    from pipeline.ingest.spans import list_spans

    try:
        span = args.span if args.span is not None else list_spans(config.data_root)[-1]
        changes = diff_span(config.data_root, span, load_schema(config.schema_path))
    except (CsvError, ValueError) as error:
        print(f"taxi-pipeline: {error}", file=sys.stderr)
        return 2
    if not changes:
        print(f"span {span} matches {config.schema_path}: no differences.")
        return 0
    print(f"span {span} differs from {config.schema_path}:\n  " + "\n  ".join(changes))
    return 1
