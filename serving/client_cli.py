"""Print the tip probability for each row of a CSV file, from any TF Serving endpoint.

    python -m serving.client_cli data/taxi/span-4/data.csv --grpc 127.0.0.1:8500
    python -m serving.client_cli data/taxi/span-4/data.csv --rest http://127.0.0.1:8501 --limit 5
    python -m serving.client_cli data/taxi/span-4/data.csv --grpc 127.0.0.1:8500 --api classify

--api picks TF Serving's API: predict (serving_default), classify (the classification
signature: a score per class) or regress (the regression signature).
"""
from __future__ import annotations

import argparse
import sys
import warnings

warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\..*)?$")

from serving.clients import GrpcClient, RestClient  # noqa: E402
from serving.examples import read_csv_rows  # noqa: E402


def _answers(client, api: str, rows) -> list[str]:
    if api == "classify":
        return [", ".join(f"class {label} score {score:.4f}" for label, score in classes)
                for classes in client.classify(rows)]
    if api == "regress":
        return [f"value {value:.4f}" for value in client.regress(rows)]
    return [f"tip_probability {probability:.4f}" for probability in client.predict(rows)]


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
    parser.add_argument("--api", choices=("predict", "classify", "regress"), default="predict")
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
            for row, answer in zip(batch, _answers(client, args.api, batch)):
                number += 1
                print(f"row {number}: {answer} (fare {row.get('fare', '')}, payment {row.get('payment_type', '')})")
    except Exception as error:  # a failed request is reported, not a traceback
        print(f"client: request failed: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
