"""A local production-like Airflow deployment on loopback: PostgreSQL, Redis, a scheduler, Celery workers.

    python -m pipeline.deployment.local_stack start --home out/stack [--workers 2] [--config FILE] [--set K=V]
    . out/stack/stack.env && taxi-pipeline run --runner airflow --airflow-mode scheduler
    python -m pipeline.deployment.local_stack stop --home out/stack

It is the shape of a real deployment at the size of one machine: Airflow's database and the
pipeline's ML Metadata on one PostgreSQL server (databases `airflow` and `taxi_metadata`), the
CeleryExecutor with Redis as broker and two `airflow celery worker`s (one task each at a time),
a real `airflow scheduler`, task logs and artifacts on a path every worker sees. `--executor
local` runs the scheduler with the LocalExecutor instead (no Redis, no workers).

Everything lives under --home: airflow.cfg (mode 0600: it holds the database password), the
pipeline's settings (pipeline.toml), stack.env to source, the servers' folders, every process's
log under logs/, and stack.json with the PIDs `stop` signals. Stopping keeps the databases, so
`start` again brings back the same history. Nothing listens beyond 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import time
import tomllib

from pipeline.config import load_config, to_toml
from pipeline.deployment import services

AIRFLOW_DATABASE, METADATA_DATABASE = "airflow", "taxi_metadata"
READY_SECONDS = 600


def _airflow() -> str:
    return str(pathlib.Path(sys.executable).parent / "airflow")


def start(home: pathlib.Path, executor: str = "celery", workers: int = 2, config_path: str | None = None,
          overrides: list[str] | None = None, retries: int = 1, zombie_seconds: int = 120,
          out=sys.stdout) -> dict:
    """Start the deployment under `home` and return what stack.json records; raises ServiceError."""
    home = home.resolve()
    state_path = home / "stack.json"
    running = json.loads(state_path.read_text())["pids"].values() if state_path.exists() else ()
    if any(services.is_running(pid) for pid in running):
        raise services.ServiceError(f"a deployment is already running from {home}: stop it first "
                                    f"(python -m pipeline.deployment.local_stack stop --home {home})")
    (home / "logs").mkdir(parents=True, exist_ok=True)
    pids: dict[str, int] = {}
    state = {"home": str(home), "executor": executor, "pids": pids}

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        # Folder names with a hyphen: the processes run in `home`, where a folder named like a
        # module (`redis`) would shadow the Python package of that name.
        postgres_folder = home / "postgres-server"
        if not (postgres_folder / "data").exists():
            say(f"initialising PostgreSQL in {postgres_folder}")
            services.init_postgres(postgres_folder, secrets.token_urlsafe(24))
        password_file = postgres_folder / "password"
        postgres, postgres_port = services.start_postgres(postgres_folder, detach=True)
        pids["postgres"] = postgres.pid
        for database in (AIRFLOW_DATABASE, METADATA_DATABASE):
            services.create_database(postgres_port, password_file, database)
        say(f"PostgreSQL on 127.0.0.1:{postgres_port} (databases {AIRFLOW_DATABASE}, {METADATA_DATABASE})")
        broker = None
        if executor == "celery":
            redis, redis_port = services.start_redis(home / "redis-server", detach=True)
            pids["redis"] = redis.pid
            broker = f"redis://127.0.0.1:{redis_port}/0"
            say(f"Redis on 127.0.0.1:{redis_port}")
        state["ports"] = {"postgres": postgres_port, **({"redis": redis_port} if broker else {})}

        config = load_config(config_path, [
            # Manual triggers only unless the settings say otherwise: a fresh deployment should not
            # start a run on its own the moment the DAG is unpaused.
            *(["airflow_schedule="] if not _sets(config_path, overrides, "airflow_schedule") else []),
            *(overrides or []),
            f"metadata_store=postgresql://{services.POSTGRES_SUPERUSER}@127.0.0.1:{postgres_port}/{METADATA_DATABASE}"])
        # Workers run in other folders (and in production on other machines): absolute, shared paths.
        config.data_root = str(pathlib.Path(config.data_root).resolve())
        config.output_root = str(pathlib.Path(config.output_root).resolve())
        (home / "pipeline.toml").write_text(to_toml(config))
        password = password_file.read_text().strip()
        _write_airflow_cfg(home, executor, postgres_port, password, broker, retries, zombie_seconds)
        env_lines = {"AIRFLOW_HOME": str(home), "TAXI_PIPELINE_CONFIG": str(home / "pipeline.toml"),
                     "TAXI_METADATA_PASSWORD_FILE": str(password_file)}
        (home / "stack.env").write_text("".join(f"export {name}={value}\n" for name, value in env_lines.items()))
        env = {**os.environ, **env_lines}
        env.pop("TAXI_METADATA_PASSWORD", None)

        worker_names = [f"worker-{number}" for number in range(1, workers + 1 if executor == "celery" else 1)]
        say("airflow db migrate ...")
        migrate = subprocess.run([_airflow(), "db", "migrate"], env=env, capture_output=True, text=True)
        if migrate.returncode != 0:
            raise services.ServiceError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-2000:]}")
        # Where each worker's log ends now: its "ready" line must come after, not from an earlier start.
        log_starts = {name: _size(home / "logs" / f"{name}.log") for name in worker_names}
        pids["scheduler"] = _spawn([_airflow(), "scheduler"], env, home / "logs" / "scheduler.log")
        for name in worker_names:
            pids[name] = _spawn([_airflow(), "celery", "worker", "--concurrency", "1", "--skip-serve-logs",
                                 "--celery-hostname", f"{name}@%h", "--without-mingle", "--without-gossip"],
                                env, home / "logs" / f"{name}.log")
        state_path.write_text(json.dumps(state, indent=2))
        say(f"scheduler ({executor} executor){f' and {workers} Celery workers' if executor == 'celery' else ''} "
            f"started; waiting for them and for the DAG {config.pipeline_name} to be parsed ...")
        _wait_until_ready(home, env, config.pipeline_name, log_starts, pids,
                          _database_url(postgres_port, password, AIRFLOW_DATABASE))
    except BaseException:
        if pids:
            say("start failed: stopping what was started")
            state_path.write_text(json.dumps(state, indent=2))
            stop(home, out=out)
        raise
    say(f"ready. Use it with:\n  . {home / 'stack.env'}\n"
        f"  {pathlib.Path(sys.executable).parent / 'taxi-pipeline'} run --runner airflow --airflow-mode scheduler\n"
        f"logs in {home / 'logs'}; stop with: python -m pipeline.deployment.local_stack stop --home {home}")
    return state


def _sets(config_path: str | None, overrides: list[str] | None, name: str) -> bool:
    """Whether the settings file or an override gives `name` a value of its own."""
    in_file = bool(config_path) and name in tomllib.loads(pathlib.Path(config_path).read_text())
    return in_file or any(item.partition("=")[0].strip() == name for item in overrides or [])


def _write_airflow_cfg(home: pathlib.Path, executor: str, postgres_port: int, password: str, broker: str | None,
                       retries: int, zombie_seconds: int) -> None:
    from pipeline.runners.airflow_runner import DAGS_FOLDER

    database = _database_url(postgres_port, password, AIRFLOW_DATABASE)
    lines = [
        "# Written by `python -m pipeline.deployment.local_stack start`; rewritten at every start.",
        "[core]",
        f"dags_folder = {DAGS_FOLDER}",
        f"executor = {'CeleryExecutor' if executor == 'celery' else 'LocalExecutor'}",
        "load_examples = False",
        # Parsing the pipeline's DAG file imports TFX and TensorFlow: 15-25 s on a busy machine.
        "dagbag_import_timeout = 300",
        "dag_file_processor_timeout = 600",
        # A task whose worker died is retried once (on any worker) before the run fails.
        f"default_task_retries = {retries}",
        "default_task_retry_delay = 10",
        "parallelism = 4",
        "[database]",
        f"sql_alchemy_conn = {database.replace('postgresql://', 'postgresql+psycopg2://')}",
        "[scheduler]",
        # Each parse costs a TensorFlow import; the task processes parse the file again anyway.
        "min_file_process_interval = 300",
        # How long a running task may go without a heartbeat before its worker is taken for dead.
        f"scheduler_zombie_task_threshold = {zombie_seconds}",
        "[logging]",
        f"base_log_folder = {home / 'logs'}",
        f"dag_processor_manager_log_location = {home / 'logs' / 'dag_processor_manager.log'}",
        f"worker_log_server_port = {services.free_port()}",
        f"trigger_log_server_port = {services.free_port()}",
        "[webserver]",
        f"secret_key = {secrets.token_urlsafe(24)}",
        "web_server_host = 127.0.0.1",
    ]
    if broker:
        lines += ["[celery]", f"broker_url = {broker}", f"result_backend = db+{database}", "worker_concurrency = 1",
                  # Airflow's Celery settings, and TFX imported once per worker instead of once per task.
                  "celery_config_options = pipeline.deployment.celery_worker.CELERY_CONFIG",
                  # One message at a time per worker: a long task does not hold a second one back.
                  "worker_prefetch_multiplier = 1"]
    path = home / "airflow.cfg"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")


def _database_url(port: int, password: str, database: str) -> str:
    return f"postgresql://{services.POSTGRES_SUPERUSER}:{password}@127.0.0.1:{port}/{database}"


def _spawn(command: list[str], env: dict, log_path: pathlib.Path) -> int:
    """Start `command` in a session of its own (it outlives us; stop signals its whole group)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=env["AIRFLOW_HOME"]).pid


def _size(path: pathlib.Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _wait_until_ready(home: pathlib.Path, env: dict, dag_id: str, log_starts: dict[str, int],
                      pids: dict[str, int], database: str) -> None:
    """Workers answering, the scheduler alive, the training DAG parsed and unpaused."""
    deadline = time.monotonic() + READY_SECONDS
    waiting_workers = set(log_starts)
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            if not services.is_running(pid):
                log = home / "logs" / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise services.ServiceError(f"{name} (PID {pid}) exited during start; its log ends:\n{tail}")
        # A worker logs "<name>@<host> ready." once it consumes; the log may hold earlier starts' lines.
        waiting_workers = {name for name in waiting_workers if " ready." not in _read_from(
            home / "logs" / f"{name}.log", log_starts[name])}
        if not waiting_workers and _unpause_if_parsed(env, dag_id, database):
            return
        time.sleep(2)
    raise services.ServiceError(
        f"not ready after {READY_SECONDS} s: "
        + (f"workers {sorted(waiting_workers)} not ready" if waiting_workers else
           f"DAG {dag_id} not parsed; see `AIRFLOW_HOME={home} airflow dags list-import-errors` and "
           f"{home / 'logs' / 'dag_processor_manager.log'}"))


def _read_from(path: pathlib.Path, offset: int) -> str:
    with open(path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _unpause_if_parsed(env: dict, dag_id: str, database: str) -> bool:
    """True once the scheduler has stored the DAG and it is unpaused (unpausing it when it is not)."""
    import psycopg2

    with psycopg2.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT is_paused FROM dag WHERE dag_id = %s", (dag_id,))
        row = cursor.fetchone()
    if row is None:
        return False
    if row[0]:
        subprocess.run([_airflow(), "dags", "unpause", dag_id, "--yes"], env=env, capture_output=True)
        return False  # checked again on the next pass
    return True


def stop(home: pathlib.Path, out=sys.stdout, grace_seconds: float = 120) -> None:
    """Stop every process stack.json names, by PID: workers (after their running task), scheduler, Redis,
    PostgreSQL (fast shutdown). The databases stay on disk."""
    home = home.resolve()
    state_path = home / "stack.json"
    if not state_path.exists():
        print(f"nothing to stop: no {state_path}", file=out, flush=True)
        return
    pids = json.loads(state_path.read_text())["pids"]
    order = sorted((name for name in pids if name.startswith("worker-"))) + ["scheduler", "redis"]
    for name in order:
        # By session: a worker that died leaves its tasks' processes behind; they go too.
        if name in pids and services.session_members(pids[name]):
            print(f"stopping {name} (PID {pids[name]})", file=out, flush=True)
            services.stop_session(pids[name], grace_seconds)
    if "postgres" in pids:
        _stop_postgres(home / "postgres-server", pids["postgres"], out)
    state_path.unlink()
    print("stopped", file=out, flush=True)


def _stop_postgres(folder: pathlib.Path, launcher_pid: int, out) -> None:
    # SIGINT to the postmaster is PostgreSQL's fast shutdown: clients are disconnected, the data is kept.
    pid_file = folder / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    if postmaster and services.is_running(postmaster):
        print(f"stopping postgres (PID {postmaster})", file=out, flush=True)
        os.kill(postmaster, signal.SIGINT)
        deadline = time.monotonic() + 60
        while services.is_running(postmaster) and time.monotonic() < deadline:
            time.sleep(0.2)
    services.stop_pid(launcher_pid, 10)


def status(home: pathlib.Path, out=sys.stdout) -> int:
    """Each process and whether it runs; 0 when all do."""
    state_path = home.resolve() / "stack.json"
    if not state_path.exists():
        print(f"not running: no {state_path}", file=out)
        return 1
    state = json.loads(state_path.read_text())
    running = {name: services.is_running(pid) for name, pid in state["pids"].items()}
    for name, pid in state["pids"].items():
        print(f"{name:10} PID {pid:<8} {'running' if running[name] else 'NOT RUNNING'}", file=out)
    for name, port in state.get("ports", {}).items():
        print(f"{name:10} 127.0.0.1:{port}", file=out)
    return 0 if all(running.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.deployment.local_stack",
        description="Start, inspect or stop a local production-like Airflow deployment of the pipeline: "
                    "PostgreSQL (Airflow's database and ML Metadata), Redis, `airflow scheduler` and Celery "
                    "workers, all on 127.0.0.1, under --home.")
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--home", default="out/stack", help="the deployment's folder (default: out/stack)")
    parser.add_argument("--executor", choices=("celery", "local"), default="celery",
                        help="celery: Redis and --workers Celery workers; local: the scheduler runs tasks itself")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers, one task each at a time (default 2)")
    parser.add_argument("--retries", type=int, default=1,
                        help="retries of a failed task, e.g. one whose worker died (default 1)")
    parser.add_argument("--zombie-seconds", type=int, default=120,
                        help="a running task without a heartbeat this long is taken for lost with its worker, "
                             "and retried or failed (default 120)")
    parser.add_argument("--config", help="TOML file with pipeline settings for the DAG")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    args = parser.parse_args(argv)
    home = pathlib.Path(args.home)
    try:
        if args.action == "start":
            start(home, args.executor, args.workers, args.config, args.set, args.retries, args.zombie_seconds,
                  out=sys.stdout)
        elif args.action == "stop":
            stop(home, out=sys.stdout)
        else:
            return status(home, out=sys.stdout)
    except (services.ServiceError, ValueError, OSError) as error:
        print(f"local_stack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
