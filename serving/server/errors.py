"""Errors with TF Serving's status codes, and how each maps to HTTP."""
from __future__ import annotations

import grpc

# TF Serving's canonical code -> HTTP status (http_server.cc ToHTTPStatusCode).
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.DATA_LOSS: 500,
}


class ServingError(Exception):
    """A request that failed with a TF Serving status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def as_invalid(function, *args):
    """function(*args), a ValueError it raises (the request's fault, e.g. a bad request id) as
    INVALID_ARGUMENT (400 over REST) with the same message."""
    try:
        return function(*args)
    except ValueError as error:
        raise invalid(str(error)) from None


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
