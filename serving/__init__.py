"""TF Serving-compatible model server and clients (see serving/README.md)."""
