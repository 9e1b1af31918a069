"""A private PostgreSQL server for the tests: its own data folder, a free loopback port, stopped by PID.

Debian's `postgresql` package gives the binaries; when they are missing and we are root, it is
installed with service starts refused (policy-rc.d), so no system cluster comes up on 5432.
initdb refuses to run as root: as root, the server runs as the `postgres` user the package
creates, in a folder of its own outside pytest's root-only temp tree. Clients log in with a
password (scram-sha-256 over TCP), so the tests exercise the way a real deployment connects.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

import portpicker

from tests.services.loopback_services import stop_process

SUPERUSER = "postgres"
START_SECONDS = 60


class MissingPostgres(RuntimeError):
    pass


@dataclass
class PostgresServer:
    port: int
    password_file: pathlib.Path
    folder: pathlib.Path
    process: subprocess.Popen

    def url(self, database: str) -> str:
        """The metadata_store setting for `database` on this server (the password is in password_file)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        path = self.folder / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _bin_dir() -> pathlib.Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return pathlib.Path(found[-1]).parent
    if os.geteuid() != 0:
        raise MissingPostgres("PostgreSQL is needed by the metadata-backend tests: run "
                              "'apt-get install postgresql' as root, then run the tests again")
    _install_without_starting("postgresql")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise MissingPostgres("'apt-get install postgresql' ran but left no /usr/lib/postgresql/*/bin/initdb")
    return pathlib.Path(found[-1]).parent


def _install_without_starting(package: str) -> None:
    """apt-get install `package`, refusing every service start its scripts ask for."""
    policy = pathlib.Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\n# written by the tests while they install a package: start no service\n"
                          "exit 101\n")
        policy.chmod(0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                        ["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode == 0 and command[1] == "install":
                return
        raise MissingPostgres(f"'apt-get install {package}' failed: {done.stderr.strip()[-400:]}")
    finally:
        if ours:
            policy.unlink()


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running server; stopped (by its PID) and its folder removed on exit."""
    bin_dir = _bin_dir()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="taxi-postgres-"))
    try:
        password_file = folder / "password"
        password_file.write_text("taxi-test-password\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam(SUPERUSER)
            for path in (folder, password_file):
                os.chown(path, user.pw_uid, user.pw_gid)
        data = folder / "data"
        init = subprocess.run(
            _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth-local=trust",
                             "--auth-host=scram-sha-256", f"--pwfile={password_file}", "--encoding=UTF8",
                             "--locale=C.UTF-8"]),
            capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise MissingPostgres(f"initdb failed: {init.stderr.strip()[-400:]}")
        process, port = _start(bin_dir, folder, data)
        try:
            yield PostgresServer(port, password_file, folder, process)
        finally:
            stop_process(process, 30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start(bin_dir: pathlib.Path, folder: pathlib.Path, data: pathlib.Path) -> tuple[subprocess.Popen, int]:
    for _ in range(3):
        port = portpicker.pick_unused_port()
        with open(folder / "server.log", "ab") as log:
            # fsync off: a test server's data need not survive a power cut, and it halves the commit cost.
            process = subprocess.Popen(
                _as_server_user([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            ready = subprocess.run([str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)])
            if ready.returncode == 0:
                return process, port
            time.sleep(0.2)
        stop_process(process, 10)
        if "address already in use" not in (folder / "server.log").read_text(errors="replace").lower():
            break
    raise MissingPostgres(f"PostgreSQL did not start on 127.0.0.1:{port}; its log ends:\n"
                          + (folder / "server.log").read_text(errors="replace")[-2000:])
