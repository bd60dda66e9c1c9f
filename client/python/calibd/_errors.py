"""calibd's exceptions: one `Error` subclass per gRPC status code, and `FrameError`.

Every failure the package reports is a `calibd.Error` carrying the `grpc.StatusCode`; a raw
`grpc.RpcError` never escapes the API. Catch a subclass to act on one outcome::

    try:
        ccd = client.get_master("demo/ccd0", "bias", version=7)
    except calibd.NotFound:
        ...

A frame that fails inside a `Client.calibrate` stream does not raise: it is yielded in the
frame's place as a `FrameError` (the stream goes on).

Thread safety: exceptions are plain values.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

import grpc

__all__ = [
    "Error", "FrameError", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded",
    "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
    "Unauthenticated", "error_for", "from_rpc_error",
]

REQUEST_ID_KEY = "calibd-request-id"


class Error(Exception):
    """A calibd call failed.

    Parameters
    ----------
    message : str
        What was wrong and what to do about it (the server's text).
    code : grpc.StatusCode, optional
        The status code; defaults to the class's own code.
    request_id : str, optional
        The server's ``calibd-request-id`` for this call, when it sent one (quote it to the
        operator).

    Attributes
    ----------
    code : grpc.StatusCode
    message : str
    request_id : str or None
    """

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None,
                 request_id: Optional[str] = None) -> None:
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.message: str = message
        self.request_id: Optional[str] = request_id
        super().__init__(message)

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.request_id and self.request_id not in self.message:
            text += f" (request id {self.request_id})"
        return text


class Cancelled(Error):
    """The call was cancelled (by the caller, e.g. KeyboardInterrupt)."""
    default_code = grpc.StatusCode.CANCELLED


class Unknown(Error):
    """An error the server did not classify."""
    default_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(Error):
    """Bad input: bad FITS, shape mismatch, NaN flat, bad option."""
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(Error):
    """The call's deadline passed before it completed."""
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(Error):
    """Unknown detector, version or file."""
    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(Error):
    """An overlapping certification (pass ``replace=True``)."""
    default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(Error):
    """The token may not do this (a write with a read token)."""
    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(Error):
    """A server limit: frame size, stream bytes, concurrent streams."""
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(Error):
    """No certified master under the strict policy, or similar state problems."""
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(Error):
    """A concurrent-write conflict, or a file that changed while it was uploaded: retry."""
    default_code = grpc.StatusCode.ABORTED


class OutOfRange(Error):
    default_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(Error):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(Error):
    default_code = grpc.StatusCode.INTERNAL


class Unavailable(Error):
    """The server (or its store) cannot be reached: retry later."""
    default_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(Error):
    """Corrupt bytes: a blob, or an upload/download that does not match its sha256."""
    default_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(Error):
    """No token, or a token the server does not know."""
    default_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: Dict[grpc.StatusCode, Type[Error]] = {
    cls.default_code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)
}
_BY_VALUE: Dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def status_code(code: "int | grpc.StatusCode") -> grpc.StatusCode:
    """The `grpc.StatusCode` of an integer code (as in ``calibd.v1.Status``)."""
    if isinstance(code, grpc.StatusCode):
        return code
    return _BY_VALUE.get(int(code), grpc.StatusCode.UNKNOWN)


class FrameError(Error):
    """One frame of a `Client.calibrate` stream failed; yielded in that frame's place.

    Attributes
    ----------
    code : grpc.StatusCode
        Why (NOT_FOUND for an unknown detector, FAILED_PRECONDITION for no certified master, ...).
    message : str
    frame_id : str
        The frame's id (its file name, or the id given).
    index : int
        Position of the frame in the input iterable (0-based).
    error : Error
        The same failure as the specific `Error` subclass (e.g. `FailedPrecondition`), for
        ``raise frame_error.error``.
    """

    def __init__(self, message: str, code: "grpc.StatusCode | int", frame_id: str = "",
                 index: int = -1, request_id: Optional[str] = None) -> None:
        code = status_code(code)
        super().__init__(message, code, request_id)
        self.frame_id = frame_id
        self.index = index
        self.error: Error = error_for(code, message, request_id)

    def __str__(self) -> str:
        return f"frame {self.frame_id!r}: {super().__str__()}"

    def __repr__(self) -> str:
        return f"FrameError({self.frame_id!r}, {self.code.name}, {self.message!r})"


def error_for(code: "grpc.StatusCode | int", message: str,
              request_id: Optional[str] = None) -> Error:
    """The `Error` subclass instance for a status code."""
    code = status_code(code)
    return _BY_CODE.get(code, Error)(message, code, request_id)


def _request_id(e: grpc.RpcError) -> Optional[str]:
    try:
        trailers = e.trailing_metadata()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a local error has no metadata
        return None
    for key, value in trailers or ():
        if key == REQUEST_ID_KEY:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


def from_rpc_error(e: grpc.RpcError, what: str = "") -> Error:
    """The `Error` for a failed gRPC call (its code, details and request id)."""
    try:
        code = e.code()  # type: ignore[attr-defined]
        details = e.details() or ""  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - e.g. a bare RpcError
        code, details = grpc.StatusCode.UNKNOWN, str(e)
    message = f"{what}: {details}" if what else details
    return error_for(code, message, _request_id(e))
