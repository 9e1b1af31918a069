"""TensorProto <-> numpy for the gRPC API, without tf.make_tensor_proto / tf.make_ndarray
on the common dtypes.

Those two helpers cost 25-40 us a call here, as much as the rest of a gRPC request's own
handling; the typed fields (string_val, float_val, ...) are filled and read directly for
the dtypes this project serves, and everything else goes through TensorFlow. Outputs use
the typed fields, as tensorflow_model_server does by default (Tensor::AsProtoField).

`to_ndarray` checks a proto's declared shape against what it holds before allocating
anything: a few bytes declaring 2e9 elements (filled from one repeated value, or zeros)
would otherwise take gigabytes. It raises TensorProtoError where TensorFlow's
Tensor::FromProto fails, and where the filled-in tensor would exceed `max_bytes`.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

# DataType -> (typed field, numpy dtype)
_FIELDS = {
    types_pb2.DT_FLOAT: ("float_val", np.float32), types_pb2.DT_DOUBLE: ("double_val", np.float64),
    types_pb2.DT_INT32: ("int_val", np.int32), types_pb2.DT_INT64: ("int64_val", np.int64),
    types_pb2.DT_BOOL: ("bool_val", np.bool_),
}
_BY_NUMPY = {np.dtype(numpy_dtype): dtype for dtype, (_, numpy_dtype) in _FIELDS.items()}
# The typed field holding each dtype's values (tensor.proto), and how many numbers make one element.
_VALUE_FIELDS = {
    **{dtype: (field, 1) for dtype, (field, _) in _FIELDS.items()}, types_pb2.DT_STRING: ("string_val", 1),
    types_pb2.DT_HALF: ("half_val", 1), types_pb2.DT_BFLOAT16: ("half_val", 1),
    types_pb2.DT_INT16: ("int_val", 1), types_pb2.DT_INT8: ("int_val", 1), types_pb2.DT_UINT8: ("int_val", 1),
    types_pb2.DT_UINT16: ("int_val", 1), types_pb2.DT_UINT32: ("uint32_val", 1),
    types_pb2.DT_UINT64: ("uint64_val", 1), types_pb2.DT_COMPLEX64: ("scomplex_val", 2),
    types_pb2.DT_COMPLEX128: ("dcomplex_val", 2),
}
MAX_DIMS = 254  # TensorShape::MaxDimensions()
# As large as the gRPC message limit of the model server: a tensor filled in from fewer values may not outgrow it.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class TensorProtoError(ValueError):
    """A TensorProto that does not describe a tensor (TF: Tensor::FromProto fails) or declares too much."""


def _shape(shape) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape])


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    if array.dtype.kind in ("O", "S"):
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel().tolist()]
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=_shape(array.shape), string_val=values)
    dtype = _BY_NUMPY.get(array.dtype)
    if dtype is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=_shape(array.shape))
    getattr(proto, _FIELDS[dtype][0]).extend(array.ravel().tolist())
    return proto


def _checked_count(proto: tensor_pb2.TensorProto, max_bytes: int) -> int:
    """The number of elements `proto` declares, once its shape, dtype and content agree; cheap."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if len(shape) > MAX_DIMS:
        raise TensorProtoError(f"its shape has {len(shape)} dimensions, more than {MAX_DIMS}")
    if any(size < 0 for size in shape):
        raise TensorProtoError(f"its shape {shape} has a negative dimension")
    count = math.prod(shape)
    if count >= 2 ** 63:
        raise TensorProtoError(f"its shape {shape} has more elements than int64 can count")
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise TensorProtoError(f"its dtype {proto.dtype} is not a TensorFlow DataType") from None
    if dtype in (tf.resource, tf.variant) or dtype._is_ref_dtype:
        raise TensorProtoError(f"a {dtype.name} tensor cannot be sent in a request")
    element_bytes = dtype.size or 8  # a string: one reference in the array
    if proto.tensor_content:
        if proto.dtype != types_pb2.DT_STRING and len(proto.tensor_content) != count * element_bytes:
            raise TensorProtoError(f"its shape {shape} of {dtype.name} needs {count * element_bytes} bytes of "
                                   f"tensor_content, but it has {len(proto.tensor_content)}")
        return count
    field, per_element = _VALUE_FIELDS.get(proto.dtype, (None, 1))
    given = len(getattr(proto, field)) // per_element if field else 0
    if given > count:
        raise TensorProtoError(f"its shape {shape} holds {count} elements, but it gives {given} values")
    if given < count and count * element_bytes > max_bytes:
        # TensorFlow would fill in the missing elements (zeros, or the last value repeated).
        raise TensorProtoError(f"its shape {shape} of {dtype.name} would take {count * element_bytes} bytes "
                               f"filled in from {given} values, more than the {max_bytes} bytes this server takes")
    return count


def to_ndarray(proto: tensor_pb2.TensorProto, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """The array of a TensorProto; TensorProtoError (saying why) when it does not describe one."""
    count = _checked_count(proto, max_bytes)
    shape = [dim.size for dim in proto.tensor_shape.dim]
    try:
        return _to_ndarray(proto, shape, count)
    except TensorProtoError:
        raise
    except Exception as error:  # what TensorFlow or numpy could not make of it
        raise TensorProtoError(f"{type(error).__name__}: {error}") from None


def _to_ndarray(proto: tensor_pb2.TensorProto, shape: list[int], count: int) -> np.ndarray:
    if not proto.tensor_content and proto.dtype == types_pb2.DT_STRING and len(proto.string_val) == count:
        array = np.empty(count, dtype=object)  # object keeps trailing NUL bytes numpy's "S" would drop
        array[:] = list(proto.string_val)
        return array.reshape(shape)
    if not proto.tensor_content and proto.dtype in _FIELDS:
        field, numpy_dtype = _FIELDS[proto.dtype]
        values = getattr(proto, field)
        if len(values) == count:
            return np.array(values, dtype=numpy_dtype).reshape(shape)
    return tf.make_ndarray(proto)  # tensor_content, a repeated last value, other dtypes
