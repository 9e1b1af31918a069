"""Prometheus and node_exporter as child processes on free loopback ports, stopped by PID.

Each service gets its own port (portpicker) and, for Prometheus, its own storage folder, so
tests never meet a system Prometheus on :9090 or each other. A port taken between picking
and binding shows as a process that exits at once: the start is retried on a new port.
"""
from __future__ import annotations

import pathlib
import subprocess
import time
from dataclasses import dataclass

import portpicker
import requests

from tests.services.debian_binaries import debian_binary

START_SECONDS = 30


@dataclass
class LoopbackService:
    name: str
    process: subprocess.Popen
    port: int
    log_path: pathlib.Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.process, 10)


def stop_process(process: subprocess.Popen, seconds: float = 30) -> None:
    """SIGTERM the process (by its PID, nothing else), SIGKILL if it has not gone in `seconds`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=seconds)


def start_prometheus(config: pathlib.Path, storage: pathlib.Path) -> LoopbackService:
    """Prometheus on `config`; ready once its rules are loaded and it answers queries."""
    def command(port: int) -> list[str]:
        return [str(debian_binary("prometheus")), f"--config.file={config}", f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return _start("prometheus", command, "/-/ready", storage.parent / "prometheus.log")


def start_node_exporter(textfile_dir: pathlib.Path) -> LoopbackService:
    """node_exporter with only the textfile collector, over the *.prom files in `textfile_dir`."""
    def command(port: int) -> list[str]:
        return [str(debian_binary("prometheus-node-exporter")), "--collector.disable-defaults",
                "--collector.textfile", f"--collector.textfile.directory={textfile_dir}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return _start("node_exporter", command, "/metrics", textfile_dir.parent / "node_exporter.log")


def _start(name: str, command, ready_path: str, log_path: pathlib.Path, tries: int = 3) -> LoopbackService:
    for _ in range(tries):
        port = portpicker.pick_unused_port()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command(port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        service = LoopbackService(name, process, port, log_path)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(service.url + ready_path, timeout=2).status_code == 200:
                    return service
            except requests.RequestException:
                pass
            time.sleep(0.2)
        service.stop()
        if "address already in use" not in service.log_tail().lower():
            break
    raise RuntimeError(f"{name} did not answer on {service.url}{ready_path} within {START_SECONDS} s "
                       f"(exit code {process.returncode}); its log {log_path} ends:\n{service.log_tail()}")
