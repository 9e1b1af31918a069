"""Canary releases: move traffic to a new version step by step, and promote or abort it on evidence.

- release.py: `taxi-pipeline release`, the steps and the decisions (promote, hold, abort)
- routing_file.py: writes the model server's routing file (weights and shadow)
- evidence.py: each arm's requests, errors, scores, latencies and shadow answers
- analysis.py: the statistical comparison of canary with stable, one check per metric
- release_record.py: the steps and their evidence in ML Metadata
"""
