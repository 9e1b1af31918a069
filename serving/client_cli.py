"""Print the tip probability for each row of a CSV file, from any TF Serving endpoint.

    python -m serving.client_cli data/taxi/span-4/data.csv --grpc 127.0.0.1:8500
    python -m serving.client_cli data/taxi/span-4/data.csv --rest http://127.0.0.1:8501 --limit 5
"""
from __future__ import annotations

import argparse
import sys
import warnings

warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\..*)?$")

from serving.clients import GrpcClient, RestClient  # noqa: E402
from serving.examples import read_csv_rows  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="CSV with the raw taxi columns (a tips column is ignored)")
    endpoint = parser.add_mutually_exclusive_group(required=True)
    endpoint.add_argument("--grpc", metavar="HOST:PORT")
    endpoint.add_argument("--rest", metavar="URL")
    parser.add_argument("--model", default="taxi-tips")
    parser.add_argument("--version", type=int)
    parser.add_argument("--label", help="version label, e.g. stable or canary")
    parser.add_argument("--limit", type=int, default=20, help="rows to score (0: all)")
    parser.add_argument("--batch", type=int, default=256, help="rows per request")
    args = parser.parse_args(argv)
    try:
        rows = list(read_csv_rows(args.csv))
    except OSError as error:
        print(f"client: cannot read {args.csv}: {error}", file=sys.stderr)
        return 2
    rows = rows[:args.limit] if args.limit else rows
    client = (GrpcClient(args.grpc, args.model, version=args.version, version_label=args.label) if args.grpc
              else RestClient(args.rest, args.model, version=args.version, version_label=args.label))
    try:
        number = 0
        for start in range(0, len(rows), args.batch):
            batch = rows[start:start + args.batch]
            for row, probability in zip(batch, client.predict(batch)):
                number += 1
                print(f"row {number}: tip_probability {probability:.4f} (fare {row.get('fare', '')}, "
                      f"payment {row.get('payment_type', '')})")
    except Exception as error:  # a failed request is reported, not a traceback
        print(f"client: request failed: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
