# One entry point for the project. `make run` and `make test` are the README's two commands;
# each builds the environment from requirements.lock first if it is missing or stale.
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint chromium serve serve-canary stack-start stack-stop stack-status lock bench clean

$(VENV)/.installed: requirements.lock setup.py
	$(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(PYTHON) -m uv venv --allow-existing --python 3.11 $(VENV)
	# pip is pinned in the lock: TFX installs user-code wheels with `python -m pip`.
	$(PYTHON) -m uv pip install --python $(BIN)/python -r requirements.lock
	$(PYTHON) -m uv pip install --python $(BIN)/python --no-deps -e .
	touch $@

run: $(VENV)/.installed
	$(BIN)/taxi-pipeline run $(ARGS)

# Two workers (pytest-xdist): a pipeline test keeps about one core busy, and CI has two.
# loadscope: each test module runs whole on one worker, so the pipelines its module
# fixtures run are run once, and tests that build on the one before keep their order.
TEST_WORKERS ?= 2
test: lint chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# Lint and import order (settings in pyproject.toml); the first thing `make test` runs.
lint: $(VENV)/.installed
	$(BIN)/ruff check .

# Headless Chromium renders the data report in the tests (Debian's package, needs root or sudo).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	    || { echo "could not install chromium: run 'apt-get install chromium' as root" >&2; exit 1; }

# Serve the pushed versions like tensorflow_model_server: gRPC :8500, REST :8501 (loopback),
# logging every request with its id where `taxi-pipeline monitor` reads it.
serve: $(VENV)/.installed
	$(BIN)/python -m serving.server --model_name=taxi-tips --model_base_path=out/serving/taxi-tips \
	    --port=8500 --rest_api_port=8501 --request_log_file=out/request-log/requests.tfrecord $(ARGS)

# Serve for a canary release: `stable` = the version before the newest, `canary` = the newest
# (serving/deploy/production_config.py), with the routing file `taxi-pipeline release` moves
# traffic with and Prometheus metrics; the server re-reads both files every second.
serve-canary: $(VENV)/.installed
	$(BIN)/python -m serving.deploy.production_config --serving_dir out/serving/taxi-tips --canary \
	    > out/serving/.models.config.new && mv out/serving/.models.config.new out/serving/models.config
	test -f out/serving/routing.json || echo '{"models": {}}' > out/serving/routing.json
	$(BIN)/python -m serving.server --model_config_file=out/serving/models.config \
	    --model_config_file_poll_wait_seconds=1 --routing_config_file=out/serving/routing.json \
	    --routing_config_poll_wait_seconds=1 --monitoring_config_file=serving/deploy/monitoring.config \
	    --port=8500 --rest_api_port=8501 --request_log_file=out/request-log/requests.tfrecord $(ARGS)

# A local production-like Airflow deployment on loopback (PostgreSQL, Redis, `airflow scheduler`, two
# Celery workers) under out/stack; then `. out/stack/stack.env` and
# `taxi-pipeline run --runner airflow --airflow-mode scheduler`. ARGS go to the start command,
# e.g. ARGS="--set train_steps=500" or ARGS="--executor local".
stack-start: $(VENV)/.installed
	$(BIN)/python -m pipeline.deployment.local_stack start --home out/stack $(ARGS)

stack-stop: $(VENV)/.installed
	$(BIN)/python -m pipeline.deployment.local_stack stop --home out/stack

stack-status: $(VENV)/.installed
	$(BIN)/python -m pipeline.deployment.local_stack status --home out/stack

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/pipeline_benchmark.py

# Re-resolve the lock after editing requirements.in (needs the package registry).
lock:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(PYTHON) -m uv pip compile requirements.in -o requirements.lock \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28

clean:
	rm -rf out
