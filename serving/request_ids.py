"""Request ids: one per served row, sent by clients, echoed by the server, kept in the request log.

A client sends `x-request-id` (REST header, gRPC metadata) holding one id for the request or
one id per row, comma-separated; without it the server makes one. `row_ids` is the one rule
both ends use to turn that value into an id per row.

TF Serving's PredictionLog (LogMetadata included) has no field for such ids, so the log keeps
them in field 1000 of the record, a number PredictionLog does not use: the record is the
PredictionLog's bytes followed by a `RequestIds` message (serialized messages concatenated
are one merged message). TF Serving's own readers parse it unchanged, keeping field 1000 as
an unknown field; `ids_of` reads it back.

The same message carries what server-side routing knows of the call (fields 1001-1004, read
with `extras_of`): the arm the router chose ("" when the request was not routed), the role
("serving" for the answer the caller got, "shadow" for a shadow version's answer to the same
request), the server-side seconds the call took, and when it was served (Unix seconds).
"""
from __future__ import annotations

import re
import uuid
from typing import NamedTuple, Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HEADER = "x-request-id"  # lower case: gRPC metadata keys must be
REQUEST_IDS_FIELD = 1000
# The rest of the extra message: field numbers PredictionLog does not use either.
ARM_FIELD, ROLE_FIELD, LATENCY_FIELD, TIMESTAMP_FIELD = 1001, 1002, 1003, 1004
SERVING, SHADOW = "serving", "shadow"  # a record's role
MAX_ID_CHARS = 128
# A header aiohttp and gRPC take with their default limits (8 KiB, with gRPC's other metadata): a
# per-row list of 32-character ids fits 217 rows. Larger batches send one id.
MAX_HEADER_CHARS = 7 * 1024
_ID = re.compile(r"[!-+\--~]{1,%d}" % MAX_ID_CHARS)  # printable ASCII but space and comma
ALLOWED = (f"one id for the request, or one id per row separated by commas; an id is 1 to {MAX_ID_CHARS} printable "
           "ASCII characters other than space and comma")


def _request_ids_class():
    """`repeated string request_id = 1000` and the routing fields, built without a .proto file."""
    file = descriptor_pb2.FileDescriptorProto(name="serving/request_ids.proto", package="serving")
    message = file.message_type.add(name="RequestIds")
    kinds = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="request_id", number=REQUEST_IDS_FIELD, type=kinds.TYPE_STRING,
                      label=kinds.LABEL_REPEATED)
    for name, number, kind in (("arm", ARM_FIELD, kinds.TYPE_STRING), ("role", ROLE_FIELD, kinds.TYPE_STRING),
                               ("latency_seconds", LATENCY_FIELD, kinds.TYPE_DOUBLE),
                               ("timestamp_seconds", TIMESTAMP_FIELD, kinds.TYPE_DOUBLE)):
        message.field.add(name=name, number=number, type=kind, label=kinds.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # a pool of its own: nothing clashes with the default one
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("serving.RequestIds"))


RequestIds = _request_ids_class()


class LogExtras(NamedTuple):
    """What a logged record carries besides TF Serving's PredictionLog (see the module doc)."""
    request_ids: list[str]
    arm: str
    role: str
    latency_seconds: float
    timestamp_seconds: float | None  # None for records written before the field existed


class Predictions(NamedTuple):
    """A predict call's answer, one value per row, with each row's request id."""
    values: np.ndarray
    request_ids: list[str]


def new_id() -> str:
    return uuid.uuid4().hex


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def check_header(header_value: str | None) -> str:
    """The request id to echo: the header as sent once every id in it is valid, or a new id when
    it is absent or empty. ValueError naming the header otherwise."""
    if not header_value:
        return new_id()
    for part in header_value.split(","):
        if not _ID.fullmatch(part):
            raise ValueError(f"{HEADER} header: {_shown(part)} is not a valid request id. Send {ALLOWED}")
    return header_value


def row_ids(header_value: str | None, rows: int) -> tuple[str, list[str]]:
    """(the request id to echo, one id per row) for a request of `rows` rows.

    One id for several rows gives row i the id `<id>-<i>`; a list must have an id per row.
    ValueError, with the message the server answers, for anything else.
    """
    echo = check_header(header_value)
    ids = echo.split(",")
    if len(ids) == 1:
        return echo, ([echo] if rows == 1 else [f"{echo}-{row}" for row in range(rows)])
    if len(ids) != rows:
        raise ValueError(f"{HEADER} header holds {len(ids)} ids for {rows} row{'s' * (rows != 1)}. Send {ALLOWED}")
    return echo, ids


def header_value(request_ids: Sequence[str] | str | None, rows: int) -> str | None:
    """What a client sends as `x-request-id` for `rows` rows: a str is one id (or the header as it
    goes), a sequence one id per row; None sends nothing. ValueError for what the server would refuse."""
    if request_ids is None:
        return None
    if isinstance(request_ids, str):
        value = request_ids
    else:
        request_ids = list(request_ids)
        if len(request_ids) != rows:
            raise ValueError(f"{len(request_ids)} request ids for {rows} rows: give one per row, or one id (a str) "
                             "for the whole request")
        value = ",".join(request_ids)
    if not value:
        return None
    row_ids(value, rows)  # refused here as the server would refuse it, before anything is sent
    if len(value) > MAX_HEADER_CHARS:
        raise ValueError(f"{HEADER} of {len(value)} characters, more than servers take in a header "
                         f"({MAX_HEADER_CHARS}): send one id for the request (rows get <id>-<row>), or fewer rows")
    return value


def with_ids(serialized_log: bytes, ids: Sequence[str] | None) -> bytes:
    """A serialized PredictionLog with `ids` in field 1000; unchanged when there are none."""
    return serialized_log + RequestIds(request_id=ids).SerializeToString() if ids else serialized_log


def with_extras(serialized_log: bytes, ids: Sequence[str] | None, arm: str = "", role: str = SERVING,
                latency_seconds: float | None = None, timestamp_seconds: float | None = None) -> bytes:
    """with_ids, plus the routing fields; a serving record that was not routed and has no times gets
    none of them, so it is what with_ids writes."""
    extras = RequestIds(request_id=ids or ())
    if arm:
        extras.arm = arm
    if role != SERVING:
        extras.role = role
    if latency_seconds is not None:
        extras.latency_seconds = latency_seconds
    if timestamp_seconds is not None:
        extras.timestamp_seconds = timestamp_seconds
    return serialized_log + extras.SerializeToString()


def ids_of(record_bytes: bytes) -> list[str]:
    """The request ids of a logged record ([] for a record without: an older log, TF Serving's own)."""
    return list(RequestIds.FromString(record_bytes).request_id)


def extras_of(record_bytes: bytes) -> LogExtras:
    """Everything with_extras added to a record (role "serving" and no times for records without)."""
    extras = RequestIds.FromString(record_bytes)
    return LogExtras(list(extras.request_id), extras.arm, extras.role or SERVING, extras.latency_seconds,
                     extras.timestamp_seconds if extras.HasField("timestamp_seconds") else None)
