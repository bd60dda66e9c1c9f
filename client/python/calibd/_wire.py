"""Protobuf wire encoding of the pixel-chunk messages, done by hand so pixels are copied once.

The protobuf runtime only takes `bytes` for a bytes field (a memoryview is refused), which
would cost a copy per chunk into a `bytes`, another into the message, and a third when it is
serialized. A `CalibrateRequest`/`BuildMasterRequest` chunk is just a tag, a length and the
bytes, so `encode_chunk` writes that prefix and joins it with a memoryview slice of the
caller's array: one copy, straight into the bytes gRPC sends. `decode_calibrate_response` does
the reverse for result chunks: it returns a memoryview into gRPC's received bytes (no copy) and
lets protobuf parse only the headers.

Thread safety: pure functions.
"""
from __future__ import annotations

from typing import Any, Tuple, Union

from ._proto import calibrator_pb2

MAX_CHUNK_BYTES = 1 << 20  # 1 MiB: the protocol's cap per chunk (gRPC's 4 MiB is never raised)

# Field numbers (calibrator.proto, builder.proto, types.proto).
_CALIBRATE_REQUEST_CHUNK = 2   # CalibrateRequest.chunk (PixelChunk)
_BUILD_REQUEST_CHUNK = 3       # BuildMasterRequest.chunk (PixelChunk)
_PIXEL_CHUNK_DATA = 1          # PixelChunk.data
_RESPONSE_HEADER = 1           # CalibrateResponse.header (ResultHeader)
_RESPONSE_CHUNK = 2            # CalibrateResponse.chunk (ResultChunk)
_RESULT_CHUNK_PLANE = 1        # ResultChunk.plane
_RESULT_CHUNK_DATA = 2         # ResultChunk.data


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: memoryview, i: int) -> Tuple[int, int]:
    shift = 0
    value = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


class Chunk:
    """A pixel chunk to send: a memoryview slice of the frame's buffer, not yet copied."""

    __slots__ = ("data", "field")

    def __init__(self, data: memoryview, field: int = _CALIBRATE_REQUEST_CHUNK) -> None:
        self.data = data
        self.field = field


def build_chunk(data: memoryview) -> Chunk:
    """A `BuildMasterRequest` chunk."""
    return Chunk(data, _BUILD_REQUEST_CHUNK)


def encode_chunk(chunk: Chunk) -> bytes:
    """``{field: PixelChunk{data: chunk.data}}`` in wire format, copying the pixels once."""
    n = chunk.data.nbytes
    inner = bytes([(_PIXEL_CHUNK_DATA << 3) | 2]) + _varint(n)
    outer = bytes([(chunk.field << 3) | 2]) + _varint(len(inner) + n)
    return b"".join((outer, inner, chunk.data))


def serializer(message: Union[Chunk, "object"]) -> bytes:
    """Request serializer for the streams: hand-encoded chunks, protobuf for the rest."""
    if isinstance(message, Chunk):
        return encode_chunk(message)
    return message.SerializeToString()  # type: ignore[attr-defined]


class ResultChunk:
    """A received result chunk: the plane and a memoryview of its bytes (no copy)."""

    __slots__ = ("plane", "data")

    def __init__(self, plane: int, data: memoryview) -> None:
        self.plane = plane
        self.data = data


def decode_calibrate_response(raw: bytes) -> Union[calibrator_pb2.ResultHeader, ResultChunk]:
    """Parses a `CalibrateResponse`: a `ResultHeader` message, or a `ResultChunk` view."""
    return decode_response(raw, calibrator_pb2.ResultHeader)


def decode_response(raw: bytes, header_type: Any) -> Any:
    """Parses a response whose field 1 is a header message (of ``header_type``) and field 2 a
    `ResultChunk` (CalibrateResponse, SynthesizeDarkResponse): the header, or a chunk view."""
    buf = memoryview(raw)
    i = 0
    result: Any = None
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire != 2:  # CalibrateResponse has only length-delimited fields; skip others
            if wire == 0:
                _, i = _read_varint(buf, i)
                continue
            if wire == 1:
                i += 8
                continue
            if wire == 5:
                i += 4
                continue
            raise ValueError(f"unexpected wire type {wire}")
        n, i = _read_varint(buf, i)
        body = buf[i:i + n]
        i += n
        if field == _RESPONSE_HEADER:
            result = header_type.FromString(body.tobytes())
        elif field == _RESPONSE_CHUNK:
            result = _decode_result_chunk(body)
    if result is None:
        return ResultChunk(0, memoryview(b""))
    return result


def _decode_result_chunk(buf: memoryview) -> ResultChunk:
    plane = 0
    data = memoryview(b"")
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _read_varint(buf, i)
            if field == _RESULT_CHUNK_PLANE:
                plane = v
        elif wire == 2:
            n, i = _read_varint(buf, i)
            if field == _RESULT_CHUNK_DATA:
                data = buf[i:i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return ResultChunk(plane, data)
