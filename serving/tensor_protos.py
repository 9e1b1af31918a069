"""TensorProto <-> numpy for the gRPC API, without tf.make_tensor_proto / tf.make_ndarray
on the common dtypes.

Those two helpers cost 25-40 us a call here, as much as the rest of a gRPC request's own
handling; the typed fields (string_val, float_val, ...) are filled and read directly for
the dtypes this project serves, and everything else goes through TensorFlow. Outputs use
the typed fields, as tensorflow_model_server does by default (Tensor::AsProtoField).
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


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    shape = [dim.size for dim in proto.tensor_shape.dim]
    count = math.prod(shape)
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
