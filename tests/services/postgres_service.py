"""A private PostgreSQL server for the tests: its own data folder, a free loopback port, stopped by PID.

The server itself comes from pipeline/deployment/services.py (the same code the local
deployment uses); the folder is made outside pytest's root-only temp tree, since as root
the server runs as the `postgres` user.
"""
from __future__ import annotations

import contextlib
import pathlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Iterator

from pipeline.deployment import services
from tests.services.loopback_services import stop_process

SUPERUSER = services.POSTGRES_SUPERUSER
MissingPostgres = services.ServiceError


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


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running server; stopped (by its PID) and its folder removed on exit."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="taxi-postgres-"))
    try:
        password_file = services.init_postgres(folder, "taxi-test-password")
        # fsync off: a test server's data need not survive a power cut, and it halves the commit cost.
        process, port = services.start_postgres(folder, settings=("fsync=off",))
        try:
            yield PostgresServer(port, password_file, folder, process)
        finally:
            stop_process(process, 30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
