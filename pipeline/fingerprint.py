"""A hash of the model code, so TFX's cache notices when models/ changes.

Transform and Trainer call models/ by dotted path, and TFX's cache key holds only the
path string, not the code behind it. Passing this hash as a component parameter puts
the code into the key.
"""
from __future__ import annotations

import hashlib
import pathlib

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
