"""Debian's Prometheus binaries for the tests, fetched by the tests themselves.

`apt-get download` + `dpkg-deb -x` into `.cache/debian/<package>/` of the checkout: nothing is
installed, so no postinst script starts a system service on the default ports, and no root
is needed once the cache is there. Binaries already on PATH are the fallback (a machine
without the package lists or the network). Anything else is an error that says what to run.
"""
from __future__ import annotations

import fcntl
import pathlib
import shutil
import subprocess
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "debian"
# binary name -> the Debian package that ships it (bookworm: prometheus 2.42, node-exporter 1.5).
PACKAGES = {"prometheus": "prometheus", "promtool": "prometheus",
            "prometheus-node-exporter": "prometheus-node-exporter"}
# The names the same programs have on PATH when installed from upstream's tarballs.
UPSTREAM_NAMES = {"prometheus-node-exporter": "node_exporter"}


class MissingBinary(RuntimeError):
    pass


def debian_binary(name: str) -> pathlib.Path:
    """The path of `name` (a key of PACKAGES), unpacked into the cache on first use."""
    package = PACKAGES[name]
    unpacked = CACHE / package / "usr" / "bin" / name
    if unpacked.exists():
        return unpacked
    CACHE.mkdir(parents=True, exist_ok=True)
    # One unpacking at a time (pytest-xdist workers, two test sessions): the others wait and reuse it.
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not unpacked.exists():
            problem = _unpack(package)
            if problem is not None:
                on_path = shutil.which(name) or shutil.which(UPSTREAM_NAMES.get(name, name))
                if on_path:
                    return pathlib.Path(on_path)
                raise MissingBinary(
                    f"{name} is needed by the Prometheus tests and could not be had: {problem}. "
                    f"Run 'apt-get update && apt-get download {package}' (the tests unpack it into "
                    f"{CACHE.relative_to(REPO)}/), or 'apt-get install {package}' as root, then run the tests again.")
    return unpacked


def _unpack(package: str) -> str | None:
    """Download and unpack `package` into CACHE/<package>; None on success, else what went wrong."""
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        download = _apt_download(package, work)
        if download.returncode != 0:
            # A fresh machine has no package lists yet, an old one stale lists (a 404): fetch them (we are root).
            update = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, timeout=300)
            if update.returncode != 0:
                return f"'apt-get update' failed: {update.stderr.strip()[-300:]}"
            download = _apt_download(package, work)
        if download.returncode != 0:
            return f"'apt-get download {package}' failed: {download.stderr.strip()[-300:]}"
        debs = list(pathlib.Path(work).glob(f"{package}_*.deb"))
        if len(debs) != 1:
            return f"'apt-get download {package}' left {len(debs)} .deb files"
        tree = pathlib.Path(work) / "tree"
        unpack = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], capture_output=True, text=True)
        if unpack.returncode != 0:
            return f"'dpkg-deb -x {debs[0].name}' failed: {unpack.stderr.strip()}"
        shutil.rmtree(CACHE / package, ignore_errors=True)
        tree.rename(CACHE / package)  # whole or not at all: a run cut short leaves only the temp folder
    return None


def _apt_download(package: str, folder: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True,
                              timeout=300)
    except FileNotFoundError:
        return subprocess.CompletedProcess([], 1, "", "apt-get is not on PATH (not a Debian system?)")
