"""TensorFlow Lite copy of the raw-feature serving signature, for devices without TF Serving.

Trainer writes it into the exported version (`assets.extra/taxi_tips.tflite`, with a small
JSON record of its size, select TF ops and latency beside it), so Pusher ships it with the
SavedModel in one move. TF Serving and serving/server read only the warmup file from
assets.extra/ and ignore everything else there.

Why the conversion does not simply call TFLiteConverter.from_saved_model: in TF 2.16 the
converter silently drops the initializer of a lookup table filled from a text file, and
Transform's vocabularies are such tables; the converted model then fails at the first
lookup ("hashtable need to be initialized before using"). Tables filled from constants do
convert (TFLite runs their import once, before the first call). So the exported SavedModel
is loaded, each table's current contents are read out of it and become its initializer,
and that copy is what gets converted. Transform ops that TFLite has no builtin for (hashing,
bucketizing, AsString) run as select TF ops: any TFLite runtime that links the Flex
delegate runs them, as the interpreter in TensorFlow's pip package does.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Iterator

import flatbuffers
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as tflite_schema
from tensorflow.python.trackable import resource

TFLITE_FILE = "taxi_tips.tflite"
# What was measured at export: size, the select TF ops a runtime must provide, latency.
RECORD_FILE = "taxi_tips.tflite.json"
# Single-row calls timed for the median latency: enough for a stable median, well under a second.
LATENCY_CALLS = 200


def _table_dtypes(table: resource.RestoredResource) -> tuple[tf.DType, tf.DType] | None:
    """(key dtype, value dtype) of a restored hash table; None for other resources."""
    creator = table._create_resource.concrete_functions[0].graph.as_graph_def()
    for node in [*creator.node, *(n for f in creator.library.function for n in f.node_def)]:
        if node.op == "HashTableV2":
            return tf.as_dtype(node.attr["key_dtype"].type), tf.as_dtype(node.attr["value_dtype"].type)
    return None


def _fill_tables_from_constants(loaded) -> int:
    """Make every hash table of `loaded` initialize from its current contents; returns how many."""
    count = 0
    for table in tf.train.TrackableView(loaded).descendants():
        if not isinstance(table, resource.RestoredResource) or not hasattr(table, "_create_resource"):
            continue
        dtypes = _table_dtypes(table)
        if dtypes is None:
            continue
        if table._resource_handle is None:
            # Loading creates only the tables some function uses. An unused one would still be
            # saved with its text-file initializer, which makes the converter drop all of them.
            table._initialize = lambda: None
            continue
        keys, values = tf.raw_ops.LookupTableExportV2(
            table_handle=table.resource_handle, Tkeys=dtypes[0], Tvalues=dtypes[1])

        def import_contents(table=table, keys=keys, values=values):
            return tf.raw_ops.LookupTableImportV2(table_handle=table.resource_handle, keys=keys, values=values)

        # Saving traces `_initialize` into the SavedModel's initializer; this one needs no file.
        table._initialize = import_contents
        count += 1
    return count


def convert(saved_model_dir: str, signature: str) -> bytes:
    """The TFLite flatbuffer of `signature` of the SavedModel in `saved_model_dir`."""
    loaded = tf.saved_model.load(saved_model_dir)
    if signature not in loaded.signatures:
        raise ValueError(f"{saved_model_dir}: no signature {signature!r} to convert to TensorFlow Lite "
                         f"(it has {sorted(loaded.signatures)}); export it in models/signatures.py")
    _fill_tables_from_constants(loaded)
    with tempfile.TemporaryDirectory(prefix="tflite-staging-") as staging:
        tf.saved_model.save(loaded, staging, signatures={signature: loaded.signatures[signature]})
        converter = tf.lite.TFLiteConverter.from_saved_model(staging, signature_keys=[signature])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        return repair_lookup_shapes(converter.convert())


def _builtin_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return _BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")


_BUILTIN_NAMES = {value: name for name, value in vars(tflite_schema.BuiltinOperator).items()
                  if not name.startswith("_")}
# Ops whose output shape is the broadcast of their inputs' (what lookup results flow into).
_ELEMENTWISE = {"ADD", "SUB", "MUL", "EQUAL", "NOT_EQUAL", "SELECT_V2", "CAST", "MINIMUM", "MAXIMUM"}


def _broadcast(shapes: list[list[int]]) -> list[int]:
    """Numpy broadcasting of static shapes that may hold -1 (unknown size, e.g. the batch)."""
    rank = max(len(shape) for shape in shapes)
    result = []
    for axis in range(rank):
        sizes = {shape[axis - rank + len(shape)] for shape in shapes if axis - rank + len(shape) >= 0} - {1}
        result.append(-1 if -1 in sizes else max(sizes | {1}))
    return result


def repair_lookup_shapes(flatbuffer: bytes) -> bytes:
    """Give hash-table lookup results the shape of their keys, and the ops fed by them theirs.

    The converter cannot infer the shape of a lookup in a restored table (the table handle
    carries no shape) and writes it as a scalar. A GATHER (an embedding lookup) prepared
    from that scalar then has the wrong rank, and the interpreter's first single-row call
    fails with "CONCATENATION failed to prepare"; calls after a larger batch happen to work.
    """
    model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(flatbuffer, 0))
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors
        signature = lambda t: list(t.shapeSignature if t.shapeSignature is not None else t.shape)  # noqa: E731
        repaired: set[int] = set()
        for op in subgraph.operators:
            name, inputs = _builtin_name(model, op), [i for i in op.inputs if i >= 0]
            if name == "HASHTABLE_FIND":
                shape = signature(tensors[op.inputs[1]])
            elif name in _ELEMENTWISE and repaired.intersection(inputs):
                shape = _broadcast([signature(tensors[i]) for i in inputs])
            elif name == "GATHER" and op.inputs[1] in repaired and op.builtinOptions.axis == 0:
                shape = signature(tensors[op.inputs[1]]) + signature(tensors[op.inputs[0]])[1:]
            else:
                continue
            output = tensors[op.outputs[0]]
            if output.shapeSignature is None and not len(output.shape if output.shape is not None else []):
                output.shape, output.shapeSignature = [abs(size) for size in shape], shape
                repaired.add(op.outputs[0])
    builder = flatbuffers.Builder(len(flatbuffer))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def select_tf_ops(flatbuffer: bytes) -> list[str]:
    """TensorFlow ops the model runs through the Flex delegate (a runtime without it cannot load it)."""
    model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    codes = (model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength()))
    return sorted({code.decode()[len("Flex"):] for code in codes if code and code.startswith(b"Flex")})


def runner(flatbuffer: bytes, signature: str):
    """A callable of the converted signature: runner(**{input name: array}) -> {output name: array}."""
    return tf.lite.Interpreter(model_content=flatbuffer).get_signature_runner(signature)


def one_row(signature_runner) -> dict[str, np.ndarray]:
    """A single example of the signature's inputs (zeros and empty strings): latency, not values, matters."""
    row = {}
    for name, detail in signature_runner.get_input_details().items():
        text = detail["dtype"] in (np.bytes_, np.object_)
        row[name] = np.array([b""]) if text else np.zeros([1], detail["dtype"])
    return row


def median_latency_ms(signature_runner, calls: int = LATENCY_CALLS) -> float:
    """Median wall time of one single-row call, after one untimed call that allocates the tensors."""
    inputs = one_row(signature_runner)
    signature_runner(**inputs)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        signature_runner(**inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


@contextlib.contextmanager
def _native_output_to_log() -> Iterator[None]:
    """The converter's and the interpreter's C++ notices ("Ignored output_format", "Created
    TensorFlow Lite delegate ...") go to this module's logger (the run's log file), not the console.

    They are written by C++ straight to file descriptor 2, below anything Python's logging
    or TF_CPP_MIN_LOG_LEVEL controls, so the descriptor itself is pointed at a file meanwhile.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace").strip()
            if text:
                logging.getLogger(__name__).info("TensorFlow Lite conversion said:\n%s", text)


def write(export_dir: str, signature: str) -> dict:
    """Convert `signature` of the SavedModel in `export_dir` into its assets.extra/; returns the record."""
    with _native_output_to_log():
        return _write(export_dir, signature)


def _write(export_dir: str, signature: str) -> dict:
    start = time.perf_counter()
    try:
        flatbuffer = convert(export_dir, signature)
    except Exception as error:
        raise RuntimeError(
            f"models/edge_export.py: signature {signature!r} of {export_dir} did not convert to TensorFlow Lite "
            f"({type(error).__name__}: {error}). An op in models/preprocessing.py or models/model.py that neither "
            "TFLite nor select TF ops can run is the usual cause; the converter names it in the error "
            "above or in the run's log.") from error
    conversion_seconds = time.perf_counter() - start
    record = {
        "file": TFLITE_FILE,
        "signature": signature,
        "bytes": len(flatbuffer),
        "select_tf_ops": select_tf_ops(flatbuffer),
        "median_latency_ms": round(median_latency_ms(runner(flatbuffer, signature)), 4),
        "latency_calls": LATENCY_CALLS,
        "conversion_seconds": round(conversion_seconds, 2),
    }
    extra = os.path.join(export_dir, "assets.extra")
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, TFLITE_FILE), "wb") as out:
        out.write(flatbuffer)
    with tf.io.gfile.GFile(os.path.join(extra, RECORD_FILE), "w") as out:
        out.write(json.dumps(record, indent=2, sort_keys=True))
    return record


def read_record(export_dir: str) -> dict | None:
    """The record `write` left in a version, or None for versions exported without an edge model."""
    path = os.path.join(export_dir, "assets.extra", RECORD_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)
