"""Private PostgreSQL and Redis servers from Debian's packages, on free loopback ports, stopped by PID.

Used by `taxi-pipeline-stack` (the local production-like deployment) and by the tests.
When a package is missing and we are root, it is installed with service starts refused
(policy-rc.d), so no system instance comes up on the default ports. initdb refuses to run
as root: as root, PostgreSQL runs as the `postgres` user the package creates, so its folder
must be one that user can enter. Clients log in with a password (scram-sha-256 over TCP),
the way a real deployment connects.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import pathlib
import pwd
import signal
import socket
import subprocess
import tempfile
import time

POSTGRES_SUPERUSER = "postgres"
START_SECONDS = 60


class ServiceError(RuntimeError):
    """A service could not be installed or started; the message says what to do."""


def free_port() -> int:
    """A loopback port nobody listens on now (the caller retries if it is taken before binding)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def install_without_starting(package: str, needed_by: str) -> None:
    """apt-get install `package`, refusing every service start its scripts ask for."""
    if os.geteuid() != 0:
        raise ServiceError(f"{needed_by} needs Debian's {package}: run 'apt-get install {package}' as root")
    # One install at a time from this program (parallel test workers, a stack and the tests):
    # dpkg takes one lock holder, and the policy file below must not be removed under another install.
    with open(pathlib.Path(tempfile.gettempdir()) / "taxi-pipeline-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _install_refusing_starts(package)


def _install_refusing_starts(package: str) -> None:
    policy = pathlib.Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\n# written while a package is installed for taxi-pipeline: start no service\n"
                          "exit 101\n")
        policy.chmod(0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        done = None
        # A fresh machine has no package lists yet, an old one stale lists: update only when needed.
        for command in (["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                        ["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode == 0 and command[1] == "install":
                return
        raise ServiceError(f"'apt-get install {package}' failed: {done.stderr.strip()[-400:]}")
    finally:
        if ours:
            policy.unlink()


def postgres_bin_dir() -> pathlib.Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        install_without_starting("postgresql", "PostgreSQL-backed metadata")
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise ServiceError("'apt-get install postgresql' ran but left no /usr/lib/postgresql/*/bin/initdb")
    return pathlib.Path(found[-1]).parent


def redis_binary() -> pathlib.Path:
    found = _which("redis-server")
    if found is None:
        install_without_starting("redis-server", "the Celery workers' broker")
        found = _which("redis-server")
    if found is None:
        raise ServiceError("'apt-get install redis-server' ran but left no redis-server on PATH")
    return found


def _which(name: str) -> pathlib.Path | None:
    for folder in ("/usr/bin", "/usr/sbin", *os.environ.get("PATH", "").split(os.pathsep)):
        if folder and os.access(os.path.join(folder, name), os.X_OK):
            return pathlib.Path(folder, name)
    return None


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", POSTGRES_SUPERUSER, "--", *command] if os.geteuid() == 0 else command


def init_postgres(folder: pathlib.Path, password: str) -> pathlib.Path:
    """A new cluster in `folder`/data whose superuser logs in with `password`; returns the password file."""
    bin_dir = postgres_bin_dir()
    folder.mkdir(parents=True, exist_ok=True)
    password_file = folder / "password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    if os.geteuid() == 0:
        user = pwd.getpwnam(POSTGRES_SUPERUSER)
        for path in (folder, password_file):
            os.chown(path, user.pw_uid, user.pw_gid)
        entered = subprocess.run(_as_postgres_user(["test", "-w", str(folder)]))
        if entered.returncode != 0:
            raise ServiceError(f"PostgreSQL runs as the '{POSTGRES_SUPERUSER}' user (initdb refuses root), who "
                               f"cannot enter {folder}: choose a folder that user can reach (e.g. under /var/tmp)")
    init = subprocess.run(
        _as_postgres_user([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", POSTGRES_SUPERUSER,
                           "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
                           "--encoding=UTF8", "--locale=C.UTF-8"]),
        capture_output=True, text=True, timeout=120)
    if init.returncode != 0:
        raise ServiceError(f"initdb failed: {init.stderr.strip()[-400:]}")
    return password_file


def start_postgres(folder: pathlib.Path, detach: bool = False, settings: tuple[str, ...] = ()
                   ) -> tuple[subprocess.Popen, int]:
    """The server of `folder`/data on a free loopback port, ready for connections.

    detach: in a session of its own, so it outlives the process that started it.
    settings: extra `name=value` server settings.
    """
    bin_dir = postgres_bin_dir()
    options = [item for setting in ("listen_addresses=127.0.0.1", *settings) for item in ("-c", setting)]
    return _start_on_free_port(
        "PostgreSQL",
        lambda port: _as_postgres_user([str(bin_dir / "postgres"), "-D", str(folder / "data"), "-p", str(port),
                                        "-k", str(folder), *options]),
        lambda port: subprocess.run([str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
                                    ).returncode == 0,
        folder / "server.log", detach)


def start_redis(folder: pathlib.Path, detach: bool = False) -> tuple[subprocess.Popen, int]:
    """redis-server on a free loopback port with no persistence (a broker's queue, not a database)."""
    binary = redis_binary()
    folder.mkdir(parents=True, exist_ok=True)
    return _start_on_free_port(
        "redis-server",
        lambda port: [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder), "--save", "",
                      "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
        _answers_ping, folder / "redis.log", detach)


def _start_on_free_port(name: str, command, ready, log_path: pathlib.Path, detach: bool
                        ) -> tuple[subprocess.Popen, int]:
    """Start `command(port)` until `ready(port)`; a port taken between picking and binding shows as
    "address already in use" in the log, and the start is tried again on another port."""
    for _ in range(3):
        port = free_port()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command(port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=detach)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            if ready(port):
                return process, port
            time.sleep(0.2)
        stop_pid(process.pid, 10)
        if "address already in use" not in log_path.read_text(errors="replace").lower():
            break
    raise ServiceError(f"{name} did not start on 127.0.0.1:{port}; its log {log_path} ends:\n"
                       + log_path.read_text(errors="replace")[-2000:])


def _answers_ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def create_database(port: int, password_file: pathlib.Path, database: str) -> None:
    """CREATE DATABASE `database` on the server at `port` (nothing if it exists)."""
    import psycopg2
    from psycopg2 import sql

    try:
        connection = psycopg2.connect(host="127.0.0.1", port=port, user=POSTGRES_SUPERUSER, dbname="postgres",
                                      password=password_file.read_text().strip(), connect_timeout=30)
    except psycopg2.Error as error:
        raise ServiceError(f"cannot log in to PostgreSQL on 127.0.0.1:{port}: {str(error).strip()}") from None
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg2.Error as error:
        raise ServiceError(f"CREATE DATABASE {database} failed: {str(error).strip()}") from None
    finally:
        connection.close()


def stop_pid(pid: int, seconds: float = 30) -> bool:
    """SIGTERM `pid`, SIGKILL after `seconds`; True if it was running.

    Only that PID is signalled: nothing is found by name, so other instances on the machine
    are never touched.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    if not _wait(lambda: is_running(pid), seconds):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: is_running(pid), 10)
    return True


def stop_session(leader: int, seconds: float = 30) -> bool:
    """Stop a process started in a session of its own and everything it started, by session id.

    Airflow moves each task (and the DAG processor) into a process group of its own, but
    all stay in the session: SIGTERM the leader and give it `seconds` to stop its children
    (a Celery worker finishes its running task), then SIGTERM, then SIGKILL, what is left.
    """
    if not session_members(leader):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(leader, signal.SIGTERM)
    _wait(lambda: is_running(leader), seconds)
    for kill in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_members(leader):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, kill)
        if _wait(lambda: bool(session_members(leader)), 10):
            break
    return True


def session_members(session: int) -> list[int]:
    """The live processes of session `session` (from /proc: field 6 of stat is the session id)."""
    is_running(session)  # reaps the leader if it is our own exited child
    members = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone while we looked
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _wait(condition, seconds: float) -> bool:
    """Poll until `condition()` is false; True if it became false within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return True
        time.sleep(0.2)
    return not condition()


def is_running(pid: int) -> bool:
    """Whether `pid` lives; an exited process nobody has reaped yet (a zombie) does not."""
    try:  # our own child: reap it
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
