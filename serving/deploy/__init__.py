"""Running the real tensorflow_model_server: configs, manifests and the models.config generator.

- production_config.py: writes models.config (version labels) from the pushed versions
- models.config, monitoring.config, batching_parameters.txt: tensorflow_model_server's config files
- docker-compose.yml, k8s/: the tensorflow/serving image locally and on Kubernetes
- grafana-dashboard.json: a dashboard over the server's Prometheus metrics and the pipeline's textfiles
- prometheus.yml, alert_rules.yml, alert_tests/: Prometheus's scrape config, the alert rules (each with a
  runbook line) and their promtool unit tests
"""
