"""Real monitoring services for the tests, run as child processes on loopback.

- debian_binaries.py: Debian's prometheus, promtool and prometheus-node-exporter binaries,
  unpacked from their packages into a cache inside the checkout (no install, no service).
- loopback_services.py: start Prometheus and node_exporter on free 127.0.0.1 ports, wait until
  they answer, stop them by PID.
- prometheus_api.py: Prometheus's HTTP API (instant queries, alerts, targets) with waiting
  until an expected answer shows up.
"""
