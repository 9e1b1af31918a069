"""A TF Serving-compatible model server and its clients, for any SavedModel (see serving/README.md).

- server/: the model server (`python -m serving.server`)
- clients/: gRPC and REST clients, request encoding and the client command (`python -m serving.clients`)
- deploy/: configs and manifests for the real tensorflow_model_server, and production_config.py
- signature_names.py: TF Serving's default signature key and method names, shared by both ends
- tensor_protos.py: TensorProto <-> numpy, shared by both ends
- request_ids.py: request ids (x-request-id), shared by both ends and the request log's readers

Neither end imports model or pipeline code: the model's features and signatures are given
to them (a schema file, a feature-type mapping, signature names).
"""
