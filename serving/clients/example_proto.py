"""tf.train.Example without TensorFlow: the same messages, declared here, encoded by protobuf.

TensorFlow's own Example class lives in `tensorflow.core.example.example_pb2`, and importing
anything under `tensorflow` runs TensorFlow's package start-up (seconds of CPU, CUDA and
oneDNN notices). A REST client needs only the Example's bytes (TF Serving's "b64" instances)
or its values (JSON), so it builds them with this class instead. The declarations copy
tensorflow/core/example/{example,feature}.proto field for field (names, numbers, types,
packed lists, the `kind` oneof); protobuf's runtime does the encoding, so the bytes are what
tf.train.Example would write for the same values (tests/unit/serving/clients compares the
declarations with TensorFlow's and the bytes of many rows).

The package is `tensorflow`, as there, so full names and text formats read the same; the
messages live in a descriptor pool of their own and never clash with TensorFlow's.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "tensorflow"


def _example_file() -> descriptor_pb2.FileDescriptorProto:
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="serving/clients/example.proto", package=_PACKAGE,
                                              syntax="proto3")
    for name, kind, packed in (("BytesList", field.TYPE_BYTES, False), ("FloatList", field.TYPE_FLOAT, True),
                               ("Int64List", field.TYPE_INT64, True)):
        message = file.message_type.add(name=name)
        value = message.field.add(name="value", number=1, label=field.LABEL_REPEATED, type=kind)
        if packed:
            value.options.packed = True
    feature = file.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, name in enumerate(("BytesList", "FloatList", "Int64List"), start=1):
        feature.field.add(name=name.lower().replace("list", "_list"), number=number, label=field.LABEL_OPTIONAL,
                          type=field.TYPE_MESSAGE, type_name=f".{_PACKAGE}.{name}", oneof_index=0)
    features = file.message_type.add(name="Features")
    features.field.add(name="feature", number=1, label=field.LABEL_REPEATED, type=field.TYPE_MESSAGE,
                       type_name=f".{_PACKAGE}.Features.FeatureEntry")
    entry = features.nested_type.add(name="FeatureEntry")  # map<string, Feature> is a repeated entry message
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
    entry.field.add(name="value", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                    type_name=f".{_PACKAGE}.Feature")
    example = file.message_type.add(name="Example")
    example.field.add(name="features", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                      type_name=f".{_PACKAGE}.Features")
    return file


_POOL = descriptor_pool.DescriptorPool()  # a pool of its own: nothing clashes with TensorFlow's
_POOL.Add(_example_file())
Example = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.Example"))
