"""Clients for any TF Serving endpoint, and the client command (`python -m serving.clients --help`).

- grpc_client.py: GrpcClient (one channel, deadlines, retries while UNAVAILABLE)
- rest_client.py: RestClient (pooled keep-alive HTTP, b64 tf.Examples)
- traffic_split.py: TrafficSplitClient (A/B and canary traffic by version label)
- request_encoding.py: CSV rows to tf.Examples or named features, feature types from a TFMD schema
- call_defaults.py: the signature, input and output a call uses unless told otherwise
- cli.py: the command: scores a CSV file's rows

`predict_with_ids` answers a `Predictions` (values, request_ids): each row's id, as the server logs it.

They import no model code: feature types and signature names are given by the caller.
"""
import warnings

# Google Cloud client libraries (pulled in by TensorFlow's dependencies) warn about Python
# and grpcio versions at import; nothing a user of the clients can act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\..*)?$")
import tf_environment  # noqa: F401,E402  (before anything imports TensorFlow)

# isort: split
from serving.clients.grpc_client import GrpcClient  # noqa: E402
from serving.clients.request_encoding import (  # noqa: E402
    feature_types_from_schema,
    read_csv_rows,
    row_to_example,
    rows_to_named_features,
    serialized_examples,
)
from serving.clients.rest_client import RestClient  # noqa: E402
from serving.clients.traffic_split import TrafficSplitClient  # noqa: E402
from serving.request_ids import Predictions  # noqa: E402

__all__ = ["GrpcClient", "Predictions", "RestClient", "TrafficSplitClient", "feature_types_from_schema",
           "read_csv_rows", "row_to_example", "rows_to_named_features", "serialized_examples"]
