"""A TF Serving-compatible model server for any SavedModel (`python -m serving.server --help`).

- model_server.py: ModelServer (gRPC and REST front ends on one asyncio loop) and the command line
- model_store.py: the versions of one model: found on disk, loaded, warmed up, chosen per request
- model_config.py: text ModelServerConfig files (models, version policies, labels)
- warmup.py: assets.extra/tf_serving_warmup_requests, written from serialized tf.Examples and replayed
- grpc_api.py: TF Serving's gRPC PredictionService and ModelService
- rest_api.py: TF Serving's REST API (/v1/models/...)
- classify_regress.py: the Classify and Regress APIs: signature checks, tf.Example inputs, results
- signature_calls.py: running a signature on a request's arrays, with TF Serving's input checks
- batching.py: server-side batching of concurrent calls (--batching_parameters_file)
- json_input.py, json_output.py: REST bodies to arrays and back, with TF Serving's rules and formats
- request_log.py: a sampled log of served requests as PredictionLog records
- routing.py: the routing file: a model's requests split between its labels by weight, sticky by a key
- shadow.py: shadow mode: predict requests also run on a shadow version, off the request path
- answered_calls.py: what follows a predict answer: score metrics, the request log, the shadow call
- metrics.py: Prometheus metrics (--monitoring_config_file)
- errors.py: errors with TF Serving's status codes and their HTTP statuses

It imports no model code: what a model takes comes from its SavedModel's signatures.
"""
