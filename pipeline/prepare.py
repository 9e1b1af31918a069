"""prepare(config): the file-system work a pipeline definition needs, done once, up front.

`create_pipeline` only wires components; what it needs to know about files (which spans
exist, where ExampleGen reads them from, the hashes that put files and code into TFX's
cache key, the content-addressed copy of the schema) is found here. Airflow builds the
pipeline object at every parse of the DAG file: it calls this once per parse and reads
nothing else.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import pathlib
import tempfile
import time

import models
from pipeline.config import PipelineConfig, is_local
from pipeline.ingest import spans

MODELS_DIR = pathlib.Path(models.__file__).resolve().parent
# ExampleGen's file pattern under input_base: every span folder as one dataset, or the
# span folder its {SPAN} placeholder picks.
ALL_SPANS_PATTERN = "span-*/*.csv"
ONE_SPAN_PATTERN = "span-{SPAN}/*.csv"


@dataclasses.dataclass(frozen=True)
class PreparedInputs:
    schema_file: str  # the curated schema, at a path named by its content
    example_gen_input_base: str  # data_root, or the folder of links to a window's spans
    example_gen_pattern: str
    code_version: str  # fingerprint of models/, for Transform, Tuner and Trainer
    data_version: str  # fingerprint of the CSV files the run reads
    serving_data_version: str  # fingerprint of the serving_data files
    # {path: sha256 of its content} of every CSV file the run reads; empty for remote data.
    data_files: dict[str, str] = dataclasses.field(default_factory=dict)
    spans_read: tuple[int, ...] = ()  # the span numbers behind them (empty for remote data)


def prepare(config: PipelineConfig) -> PreparedInputs:
    """Raises ValueError, naming the path, when the data or serving data cannot be found."""
    input_base, pattern = config.data_root, ONE_SPAN_PATTERN
    window = spans.parse_window(config.spans)
    if is_local(config.data_root):
        spans.list_spans(config.data_root)  # a clear error now beats ExampleGen's later
    if config.spans == "all" or window:
        # Read as one dataset; ExampleGen records it as span 0.
        pattern = ALL_SPANS_PATTERN
        if window:
            input_base, _ = spans.window_folder(config.data_root, window, f"{config.pipeline_root}/span_windows")
    spans_read = spans.spans_to_read(config.data_root, config.spans) if is_local(config.data_root) else []
    data_files = content_hashes(_files_read(config, spans_read))
    return PreparedInputs(
        schema_file=content_addressed_schema(config),
        example_gen_input_base=input_base,
        example_gen_pattern=pattern,
        code_version=models_fingerprint(),
        data_version=files_fingerprint(data_files),
        serving_data_version=files_fingerprint(content_hashes(_serving_files(config))),
        data_files=data_files if is_local(config.data_root) else {},
        spans_read=tuple(spans_read))


def content_addressed_schema(config: PipelineConfig) -> str:
    """A copy of the curated schema under a path named by its hash.

    ImportSchemaGen's cache key holds the schema's path, not its text; reading it from a
    content-named copy makes an edited schema a new input that re-runs validation.
    """
    if not is_local(config.pipeline_root):
        # On a cluster the schema ships inside the pipeline image, whose tag versions it.
        return config.schema_path
    text = pathlib.Path(config.schema_path).read_bytes()
    folder = pathlib.Path(config.pipeline_root) / "curated_schema" / hashlib.sha256(text).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "schema.pbtxt"
    # Compared, not just found: a copy torn by a crash (before writes were atomic) is written again.
    if not copy.exists() or copy.read_bytes() != text:
        # Written to a temporary file beside it, then renamed: a reader (another run, an
        # Airflow parse) finds the whole schema or none, never half of it.
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".schema.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(text)
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from other users' runs
            os.replace(temporary, copy)
        except BaseException:
            pathlib.Path(temporary).unlink(missing_ok=True)
            raise
    return str(copy)


def _files_read(config: PipelineConfig, spans_read: list[int]) -> list[str]:
    if not is_local(config.data_root):
        return [config.data_root]
    return [path for span in spans_read for path in spans.span_files(config.data_root, span)]


def _serving_files(config: PipelineConfig) -> list[str]:
    if not config.serving_data or not is_local(config.serving_data):
        return [config.serving_data] if config.serving_data else []
    # A CSV file, a folder of CSVs, or a request-log file pattern.
    pattern = f"{config.serving_data}/*" if pathlib.Path(config.serving_data).is_dir() else config.serving_data
    found = glob.glob(pattern)
    if not found:
        raise ValueError(f"serving_data {config.serving_data}: no such file, folder or matching files")
    return found


# Hashes that put what a path points at into TFX's cache key. TFX's cache key holds
# component parameters, such as the dotted path Transform and Trainer call models/ by,
# or the folder a check reads files from, but not the code or the files behind them.
# Passing these hashes as parameters puts those into the key.

def models_fingerprint(root: pathlib.Path = MODELS_DIR) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def file_sha256(path: str) -> str:
    """The sha256 of a file's content, read in blocks (a span file may not fit in memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_hashes(paths: list[str]) -> dict[str, str]:
    """{path: sha256} of local files; a remote path maps to "" (not read here, see files_fingerprint).

    By content, not size and time: a file copied back from a backup or touched by a checkout
    is the same input, and a file rewritten within the same second at the same size is not.
    The shipped spans (1.9 MB) hash in about 10 ms.
    """
    return {path: "" if "://" in path else file_sha256(path) for path in paths}


def files_fingerprint(hashes: dict[str, str]) -> str:
    """Changes when one of these files is added, removed or its content changes.

    For remote files it is the current time: reading a bucket at every DAG parse costs
    more than re-running the cheap checks that take it as input.
    """
    if any("://" in path for path in hashes):
        return str(time.time())
    digest = hashlib.sha256()
    for path in sorted(hashes):
        digest.update(f"{path}:{hashes[path]}\n".encode())
    return digest.hexdigest()[:16]
