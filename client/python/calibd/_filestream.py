"""Calibrate results streamed straight into the FITS file's bytes, for `calibd.reduce`.

A result that only goes to a file need not become a `CCDData` first. `FileAssembler` takes the
place of `_calibrate.ResultAssembler` in the stream: each received chunk (a memoryview of
gRPC's bytes) is converted where it lands, in one NumPy pass into the output file's big-endian
buffer — data byte-swapped, variance to its square root (UNCERT), DQ to MASK (DQ != 0) and to
FITS's offset int16 — while the chunk is still in the cache, so a pixel byte is touched once
between gRPC and the kernel's write. The finished frame is a list of `_fitsio._Plane` that a
writer thread writes (`_fitsio.write_planes`); its buffers go back to the pool afterwards.

The bytes are those `_fitsio.FitsWriter` writes for the same result as a CCDData
(tests/python/test_reduction.py compares them).

Thread safety: an assembler belongs to the thread reading the stream; a `BufferSet` is
released (``release``) by the writer thread once written.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _convert, _errors, _fitsio
from ._proto import calibrator_pb2, types_pb2
from ._types import AppliedMaster, statistics_dict

_ITEMSIZE = {types_pb2.PLANE_DATA: 4, types_pb2.PLANE_VARIANCE: 4, types_pb2.PLANE_DQ: 2}


_ALIGN = 4096  # O_DIRECT: buffer address, file offset and length in multiples of this


class BufferSet:
    """One frame's output file laid out in a single page-aligned buffer — each HDU's header
    blocks, then its big-endian data and block padding — so the file is written with one
    (O_DIRECT) write. ``arrays`` are the data regions as flat arrays; the layout follows the
    primary header's length, so it is redone for each frame (`layout`), the memory reused."""

    def __init__(self, shape: Tuple[int, int], planes: Tuple[int, ...]) -> None:
        self.shape = shape
        self.planes = planes
        self.raw = np.empty(0, np.uint8)
        self.arrays: Dict[str, np.ndarray] = {}
        self.hdus: List[Tuple[str, bytes, int, int]] = []  # (name, cards, header at, length)
        self.size = 0
        self.busy = False
        self._lock = threading.Lock()

    def layout(self, hdus: List[Tuple[str, bytes, str]]) -> None:
        """Places ``hdus`` — (name, cards, big-endian dtype) in file order — in the buffer."""
        n = self.shape[0] * self.shape[1]
        places = []
        at = 0
        for name, cards, dtype in hdus:
            hlen = _fitsio.header_size(cards)
            dlen = n * np.dtype(dtype).itemsize
            places.append((name, cards, at, hlen, dtype, dlen))
            at += hlen + dlen + (-dlen % _fitsio.BLOCK)
        self.size = at
        need = at + (-at % _ALIGN)
        if self.raw.size < need:
            store = np.empty(need + _ALIGN, np.uint8)
            skip = -store.ctypes.data % _ALIGN
            self.raw = store[skip:skip + need]
        self.raw[at:need] = 0
        self.arrays = {}
        self.hdus = []
        for name, cards, hat, hlen, dtype, dlen in places:
            dat = hat + hlen
            self.arrays[name] = self.raw[dat:dat + dlen].view(dtype)
            self.raw[dat + dlen:dat + dlen + (-dlen % _fitsio.BLOCK)] = 0
            self.hdus.append((name, cards, hat, hlen))

    def take(self) -> bool:
        with self._lock:
            if self.busy:
                return False
            self.busy = True
            return True

    def release(self) -> None:
        with self._lock:
            self.busy = False


class FileResult:
    """A received result ready to write: the file's bytes and the header's facts."""

    __slots__ = ("frame_id", "buffers", "statistics", "provenance")

    def __init__(self, frame_id: str, buffers: BufferSet, statistics: Dict[str, float],
                 provenance: List[AppliedMaster]) -> None:
        self.frame_id = frame_id
        self.buffers = buffers
        self.statistics = statistics
        self.provenance = provenance

    def write(self, path: str, overwrite: bool) -> None:
        """Writes the file, then gives the buffer back (call on a writer thread)."""
        try:
            _fitsio.write_file_image(path, self.buffers.raw, self.buffers.size, overwrite)
        finally:
            self.buffers.release()


class FileAssembler:
    """`ResultAssembler`'s protocol (``add(message, index)`` → result or None), producing
    `FileResult`s instead of CalibratedFrames; keeps up to ``sets`` buffer sets."""

    def __init__(self, sets: int = 3) -> None:
        self._sets: List[BufferSet] = []
        self._limit = max(2, sets)
        self._header: Optional[calibrator_pb2.ResultHeader] = None
        self._buffers: Optional[BufferSet] = None
        self._order: List[int] = []
        self._plane = 0
        self._filled = 0  # bytes of the current plane received
        self._carry = b""  # a partial pixel at a chunk boundary
        self._sums: Dict[str, int] = {}
        self._dq_aligned = True
        self._f4 = np.empty(0, "<f4")  # chunk-sized scratch, in the cache
        self._u2 = np.empty(0, "<u2")

    @property
    def active(self) -> bool:
        return self._header is not None

    def _buffer_set(self, shape: Tuple[int, int], planes: Tuple[int, ...]) -> BufferSet:
        while True:
            for b in self._sets:
                if b.shape == shape and b.planes == planes and b.take():
                    return b
            if len(self._sets) < self._limit:
                b = BufferSet(shape, planes)
                b.take()
                self._sets.append(b)
                return b
            # Every set is being written (or of another shape): drop an idle one of another
            # shape, else wait for a writer.
            for i, b in enumerate(self._sets):
                if (b.shape != shape or b.planes != planes) and b.take():
                    del self._sets[i]
                    break
            else:
                threading.Event().wait(0.002)

    def add(self, message: Any, index: int) -> Any:
        if isinstance(message, calibrator_pb2.ResultHeader):
            if self._header is not None:
                raise _errors.Internal("protocol error from the server: a result header arrived "
                                       "before the previous result was complete")
            return self._start(message, index)
        if self._header is None or self._plane >= len(self._order):
            raise _errors.Internal("protocol error from the server: a result chunk without a "
                                   "result in progress")
        plane = self._order[self._plane]
        if message.plane != plane:
            raise _errors.Internal(f"protocol error from the server: chunk of plane "
                                   f"{message.plane} while plane {plane} is incomplete")
        data = message.data
        size = _ITEMSIZE[plane]
        total = self._header.width * self._header.height * size
        if self._filled + data.nbytes > total:
            raise _errors.Internal(f"protocol error from the server: plane {plane} of "
                                   f"{self._header.frame_id!r} exceeds {total} bytes")
        received = data.nbytes
        if self._carry or received % size:
            # Rare: a chunk boundary splits a pixel; its bytes wait for the next chunk.
            joined = self._carry + bytes(data)
            whole = len(joined) // size * size
            start = (self._filled - len(self._carry)) // size
            self._carry = joined[whole:]
            data = memoryview(joined)[:whole]
        else:
            start = self._filled // size
        self._convert(plane, start, data, size)
        self._filled += received
        if self._filled == total:
            self._plane += 1
            self._filled = 0
            self._carry = b""
        return self._finish() if self._plane >= len(self._order) else None

    def _convert(self, plane: int, start: int, data: memoryview, size: int) -> None:
        """Converts ``data`` (pixels ``start``.. of ``plane``) into the file buffers and adds
        its 32-bit words to the HDUs' DATASUMs, from the native values while they are in the
        cache: a float's big-endian word is the number its native bits spell; a DQ word of
        two big-endian uint16 (s0, s1) is s0·2¹⁶ + s1, the 16-bit rotation of the native
        uint32 view of (s0, s1) — and a rotation by 16 is a multiplication by 2¹⁶ in the
        ones'-complement (mod 2³² − 1) sum, applied once in `_finish`."""
        a = self._buffers.arrays  # type: ignore[union-attr]
        n = data.nbytes // size
        if not n:
            return
        end = start + n
        if plane == types_pb2.PLANE_DATA:
            src = np.frombuffer(data, "<f4")
            np.copyto(a["DATA"][start:end], src)
            self._sums["DATA"] += int(src.view("<u4").sum(dtype=np.uint64))
        elif plane == types_pb2.PLANE_VARIANCE:
            # float32 square root, correctly rounded: calibctl's UNCERT bit for bit.
            root = self._scratch_f4(n)
            np.sqrt(np.frombuffer(data, "<f4"), out=root)
            np.copyto(a["UNCERT"][start:end], root)
            self._sums["UNCERT"] += int(root.view("<u4").sum(dtype=np.uint64))
        else:
            dq = np.frombuffer(data, "<u2")
            np.not_equal(dq, 0, out=a["MASK"][start:end].view(bool))
            stored = self._scratch_u2(n)
            np.bitwise_xor(dq, np.uint16(0x8000), out=stored)
            np.copyto(a["DQ"][start:end], stored)
            if start % 2 == 0 and n % 2 == 0:
                self._sums["DQ"] += int(stored.view("<u4").sum(dtype=np.uint64))
            else:
                self._dq_aligned = False  # summed from the buffer in _finish

    def _scratch_f4(self, n: int) -> np.ndarray:
        if self._f4.size < n:
            self._f4 = np.empty(n, "<f4")
        return self._f4[:n]

    def _scratch_u2(self, n: int) -> np.ndarray:
        if self._u2.size < n:
            self._u2 = np.empty(n, "<u2")
        return self._u2[:n]

    def _start(self, h: calibrator_pb2.ResultHeader, index: int) -> Any:
        if h.status.code != 0:
            return _errors.FrameError(h.status.message, h.status.code, h.frame_id, index)
        if h.width <= 0 or h.height <= 0:
            raise _errors.Internal(f"protocol error from the server: result for "
                                   f"{h.frame_id!r} has shape {h.width}x{h.height}")
        planes = tuple(h.planes)
        if types_pb2.PLANE_DATA not in planes or len(set(planes)) != len(planes) or any(
                p not in _ITEMSIZE for p in planes):
            raise _errors.InvalidArgument(
                "reduce writes files of the data plane (with variance and DQ when asked)")
        self._header = h
        self._order = list(planes)
        shape = (h.height, h.width)
        self._buffers = self._buffer_set(shape, planes)
        hdus = [("DATA", _fitsio.primary_cards(shape, _convert.cards_to_header(h.cards),
                                               _convert.unit_name(h.unit)), ">f4")]
        if types_pb2.PLANE_VARIANCE in planes:
            hdus.append(("UNCERT", _fitsio.uncert_cards(shape), ">f4"))
        if types_pb2.PLANE_DQ in planes:
            hdus += [("MASK", _fitsio.mask_cards(shape), "u1"),
                     ("DQ", _fitsio.dq_cards(shape), ">u2")]
        self._buffers.layout(hdus)
        self._plane = 0
        self._filled = 0
        self._carry = b""
        self._sums = {"DATA": 0, "UNCERT": 0, "DQ": 0}
        self._dq_aligned = True
        return self._finish() if not self._order else None

    def _finish(self) -> FileResult:
        h = self._header
        b = self._buffers
        assert h is not None and b is not None
        self._header = None
        self._buffers = None
        a = b.arrays
        fold = _fitsio.fold
        sums = {"DATA": fold(self._sums["DATA"])}
        if "UNCERT" in a:
            sums["UNCERT"] = fold(self._sums["UNCERT"])
        if "DQ" in a:
            sums["MASK"] = _fitsio._word_sum(a["MASK"])
            if self._dq_aligned and a["DQ"].size % 2 == 0:
                sums["DQ"] = fold(fold(self._sums["DQ"]) << 16)
            else:
                sums["DQ"] = _fitsio._word_sum(a["DQ"])
        for name, cards, at, length in b.hdus:
            block = _fitsio._hdu_header(_fitsio._Plane(cards, memoryview(a[name]), sums[name]))
            assert len(block) == length, (name, len(block), length)
            b.raw[at:at + length] = np.frombuffer(block, np.uint8)
        return FileResult(h.frame_id, b, statistics_dict(h.statistics),
                          [AppliedMaster.from_proto(m) for m in h.masters])
