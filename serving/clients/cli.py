"""Print a model's answer for each row of a CSV file, from any TF Serving endpoint.

    python -m serving.clients data/taxi/span-4/data.csv --grpc 127.0.0.1:8500
    python -m serving.clients data/taxi/span-4/data.csv --rest http://127.0.0.1:8501 --limit 5
    python -m serving.clients data/taxi/span-4/data.csv --grpc 127.0.0.1:8500 --api classify
    python -m serving.clients data/taxi/span-4/data.csv --rest http://127.0.0.1:8501 --show-ids

--api picks TF Serving's API: predict (serving_default), classify (the classification
signature: a score per class) or regress (the regression signature); --signature names
another. Rows become tf.Examples with the feature types of --schema (a TFMD schema: its
features in the SERVING environment; other columns, such as a label, are left out).
--show-ids prints each row's request id (predict), the id the server's request log keeps it under.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from serving.clients.call_defaults import CLASSIFY_SIGNATURE, PREDICT_SIGNATURE, REGRESS_SIGNATURE
from serving.clients.request_encoding import SchemaError, feature_types_from_schema, read_csv_rows
from serving.clients.rest_client import RestClient

# The schema of this repository's data; clients of another model pass their own.
DEFAULT_SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "schema" / "schema.pbtxt"
SIGNATURES = {"predict": PREDICT_SIGNATURE, "classify": CLASSIFY_SIGNATURE, "regress": REGRESS_SIGNATURE}


def _answers(client, args, rows) -> tuple[list[str], list[str | None]]:
    """(an answer per row, a request id per row: None unless --show-ids)."""
    signature = args.signature or SIGNATURES[args.api]
    no_ids = [None] * len(rows)
    if args.api == "classify":
        return [", ".join(f"class {label} score {score:.4f}" for label, score in classes)
                for classes in client.classify(rows, signature)], no_ids
    if args.api == "regress":
        return [f"value {value:.4f}" for value in client.regress(rows, signature)], no_ids
    label = args.output_key or "prediction"
    if args.show_ids:
        values, ids = client.predict_with_ids(rows, signature=signature, output_key=args.output_key)
    else:
        values, ids = client.predict(rows, signature, output_key=args.output_key), no_ids
    return [f"{label} {value:.4f}" for value in values], ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.clients", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="CSV with a header; columns the schema does not list are ignored")
    endpoint = parser.add_mutually_exclusive_group(required=True)
    endpoint.add_argument("--grpc", metavar="HOST:PORT")
    endpoint.add_argument("--rest", metavar="URL")
    parser.add_argument("--model", default="taxi-tips")
    parser.add_argument("--version", type=int)
    parser.add_argument("--label", help="version label, e.g. stable or canary")
    parser.add_argument("--limit", type=int, default=20, help="rows to score (0: all)")
    parser.add_argument("--batch", type=int, default=256, help="rows per request")
    parser.add_argument("--api", choices=tuple(SIGNATURES), default="predict")
    parser.add_argument("--schema", default=str(DEFAULT_SCHEMA),
                        help="TFMD schema (text) giving the features' types (default: %(default)s)")
    parser.add_argument("--signature", help="signature name (default: serving_default, classification or "
                        "regression, by --api)")
    parser.add_argument("--output_key", help="predict: the output to print (default: the signature's only one)")
    parser.add_argument("--show", default="", metavar="COLUMN,...", help="CSV columns to print beside each answer")
    parser.add_argument("--show-ids", action="store_true",
                        help="print each row's request id beside its answer (--api predict)")
    args = parser.parse_args(argv)
    if args.show_ids and args.api != "predict":
        parser.error("--show-ids goes with --api predict")
    try:
        feature_types = feature_types_from_schema(args.schema)
    except SchemaError as error:
        print(f"client: {error}", file=sys.stderr)
        return 2
    try:
        rows = list(read_csv_rows(args.csv))
    except OSError as error:
        print(f"client: cannot read {args.csv}: {error}", file=sys.stderr)
        return 2
    rows = rows[:args.limit] if args.limit else rows
    shown = [column for column in args.show.split(",") if column]
    if args.grpc:
        # Here, not at the top: TF Serving's gRPC protos import TensorFlow (seconds); --rest needs none of it.
        from serving.clients.grpc_client import GrpcClient

        client = GrpcClient(args.grpc, args.model, feature_types, version=args.version, version_label=args.label)
    else:
        client = RestClient(args.rest, args.model, feature_types, version=args.version, version_label=args.label)
    try:
        number = 0
        for start in range(0, len(rows), args.batch):
            batch = rows[start:start + args.batch]
            answers, ids = _answers(client, args, batch)
            for row, answer, request_id in zip(batch, answers, ids):
                number += 1
                context = ", ".join(([f"id {request_id}"] if request_id else [])
                                    + [f"{column} {row.get(column, '')}" for column in shown])
                print(f"row {number}: {answer}" + (f" ({context})" if context else ""))
    except Exception as error:  # a failed request is reported, not a traceback
        print(f"client: request failed: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0
