"""Hashes that put what a path points at into TFX's cache key.

TFX's cache key holds component parameters, such as the dotted path Transform and
Trainer call models/ by, or the folder a check reads files from, but not the code or the
files behind them. Passing these hashes as parameters puts those into the key.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import time

import models

MODELS_DIR = pathlib.Path(models.__file__).resolve().parent


def models_fingerprint(root: pathlib.Path = MODELS_DIR) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def files_fingerprint(paths: list[str]) -> str:
    """Changes when one of these files is added, removed or rewritten.

    For remote files it is the current time: statting a bucket at every DAG parse costs
    more than re-running the cheap checks that take it as input.
    """
    if any("://" in path for path in paths):
        return str(time.time())
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = os.stat(path)
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
