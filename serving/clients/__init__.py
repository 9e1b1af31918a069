"""Clients for any TF Serving endpoint, and the client command (`python -m serving.clients --help`).

- grpc_client.py: GrpcClient (one channel, deadlines, retries while UNAVAILABLE)
- rest_client.py: RestClient (pooled keep-alive HTTP, b64 tf.Examples)
- traffic_split.py: TrafficSplitClient (A/B and canary traffic by version label)
- request_encoding.py: CSV rows to tf.Examples or named features, feature types from a TFMD schema
- example_proto.py: the tf.Example messages without TensorFlow, for the REST client's requests
- call_defaults.py: the signature, input and output a call uses unless told otherwise
- cli.py: the command: scores a CSV file's rows

`predict_with_ids` answers a `Predictions` (values, request_ids): each row's id, as the server logs it.

They import no model code: feature types and signature names are given by the caller.
The names below are imported on first use: the gRPC client needs TensorFlow Serving's protos,
which import TensorFlow (seconds); the REST client and its command import no TensorFlow.
"""
import importlib
import warnings

# Google Cloud client libraries (pulled in by TensorFlow's dependencies) warn about Python
# and grpcio versions at import; nothing a user of the clients can act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\..*)?$")
import tf_environment  # noqa: F401,E402  (before anything imports TensorFlow)

# Each public name and the module it comes from.
_HOMES = {
    "GrpcClient": "serving.clients.grpc_client",
    "RestClient": "serving.clients.rest_client",
    "TrafficSplitClient": "serving.clients.traffic_split",
    "Predictions": "serving.request_ids",
    **dict.fromkeys(("feature_types_from_schema", "read_csv_rows", "row_to_example", "rows_to_named_features",
                     "serialized_examples"), "serving.clients.request_encoding"),
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # asked once
    return value
