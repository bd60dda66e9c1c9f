"""FITS files for the client: reading a raw frame, and writing a calibrated one the way calibctl
does (data, UNCERT, MASK, DQ; CHECKSUM and DATASUM on every HDU) — fast.

astropy computes FITS checksums in Python per 2880-byte block, which costs seconds for a
4096x4096 frame, and its HDU writer copies each plane more than once. `FitsWriter` writes the
image HDUs itself: header cards from astropy's `Header.tostring`, the data as big-endian bytes
from one vectorised conversion into a reused buffer, each HDU's 32-bit ones'-complement sum
taken with NumPy before the write (FITS standard, appendix J: DATASUM is the data's sum,
CHECKSUM the 16-character encoding of the complemented sum over header and data, so that the
whole HDU sums to -0). `write_file_image` writes a whole file image with O_DIRECT (reduce).

Thread safety: functions over their own files; a `FitsWriter` per thread; the read pool locks.
"""
from __future__ import annotations

import errno
import fcntl
import os
import sys
import threading
from typing import Any, Dict, List, Tuple

import numpy as np
from astropy.io import fits

from . import _errors

BLOCK = 2880
CARD = 80
_ZERO_CHECKSUM = "0000000000000000"
# Encoded checksum characters avoid the punctuation between the digits and letters.
_EXCLUDE = tuple(range(0x3A, 0x41)) + tuple(range(0x5B, 0x61))


# Stored BITPIX → the little-endian dtype of the pixels sent (BZERO 32768 on 16 bits: uint16).
_PRIMARY_DTYPES = {8: "u1", 16: "<i2", 32: "<i4", 64: "<i8", -32: "<f4", -64: "<f8"}
_SWAP_STEP = 1 << 18  # pixels converted per NumPy call (512 KiB of uint16): in the cache


class _ReadPool:
    """Pixel buffers of raw frames, reused once nothing else refers to them (the frame was
    sent): no fresh memory, so no page faults, for each frame read."""

    def __init__(self) -> None:
        from ._calibrate import ArrayPool
        # Frames in flight on a stream (the window, 4) and the one being read: a few buffers
        # (this much memory stays reserved for the next frames after a stream ends).
        self._pool = ArrayPool(6)
        self._lock = threading.Lock()

    def empty(self, shape: Tuple[int, int], dtype: str) -> np.ndarray:
        with self._lock:
            return self._pool.empty(shape, dtype)


_read_pool: Any = None


def _read_primary(path: str) -> Any:
    """(pixels, header) of an uncompressed 2-D primary image read straight into a pooled
    buffer (the header by astropy, the pixels with one readinto and an in-place conversion
    to little-endian, in cache-sized steps); None for anything else (astropy reads it)."""
    global _read_pool
    with open(path, "rb") as f:
        try:
            header = fits.Header.fromfile(f)
        except Exception:  # noqa: BLE001 - not a FITS header astropy can parse: astropy's error
            return None
        start = f.tell()
        try:
            if header.get("SIMPLE") is not True or header.get("NAXIS") != 2 or \
                    header.get("GROUPS") or start % BLOCK:
                return None
            bitpix = int(header["BITPIX"])
            nx, ny = int(header["NAXIS1"]), int(header["NAXIS2"])
            bzero, bscale = header.get("BZERO", 0), header.get("BSCALE", 1)
        except (KeyError, TypeError, ValueError):
            return None
        dtype = _PRIMARY_DTYPES.get(bitpix)
        offset_u16 = bitpix == 16 and bzero == 32768
        if dtype is None or nx <= 0 or ny <= 0 or bscale != 1 or (bzero != 0 and
                                                                  not offset_u16):
            return None
        if offset_u16:
            dtype = "<u2"
        nbytes = nx * ny * abs(bitpix) // 8
        if os.fstat(f.fileno()).st_size < start + nbytes:
            return None  # truncated: astropy says how
        if _read_pool is None:
            _read_pool = _ReadPool()
        pixels = _read_pool.empty((ny, nx), dtype)
        flat = pixels.reshape(-1)
        if f.readinto(memoryview(flat).cast("B")) != nbytes:
            return None
    if flat.itemsize > 1:
        stored = flat.view(flat.dtype.newbyteorder(">"))
        for i in range(0, flat.size, _SWAP_STEP):
            if offset_u16:  # stored int16 + 32768 = the stored bits with the sign bit flipped
                np.bitwise_xor(stored[i:i + _SWAP_STEP], np.uint16(0x8000),
                               out=flat[i:i + _SWAP_STEP])
            else:
                np.copyto(flat[i:i + _SWAP_STEP], stored[i:i + _SWAP_STEP])
    return pixels, header


def read_fits_frame(path: str) -> Tuple[np.ndarray, fits.Header]:
    """Pixels and header of the first image HDU of a FITS file (tile-compressed too).

    An uncompressed 2-D primary image (what cameras write) is read straight into a reused
    buffer and converted in place to little-endian (unsigned 16-bit as stored, BZERO 32768,
    without astropy's scaling); anything else through astropy.
    """
    try:
        fast = _read_primary(path)
        if fast is not None:
            return fast
        with fits.open(path, memmap=False, do_not_scale_image_data=True) as hdul:
            for hdu in hdul:
                if not hdu.is_image or hdu.data is None:
                    continue
                h = hdu.header
                if isinstance(hdu, fits.CompImageHDU):
                    break  # compressed: let astropy decode and scale it below
                data = np.asarray(hdu.data)
                bzero, bscale = h.get("BZERO", 0), h.get("BSCALE", 1)
                if bscale == 1 and bzero == 32768 and data.dtype.kind == "i" and \
                        data.dtype.itemsize == 2:
                    out = data.astype("<i2")
                    out ^= np.int16(-32768)
                    return out.view("<u2"), h.copy()
                if bscale == 1 and bzero == 0:
                    return data, h.copy()
                break  # other scaling: astropy's
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None:
                    return np.asarray(hdu.data), hdu.header.copy()
    except FileNotFoundError as e:
        raise _errors.NotFound(f"cannot read {path}: {e.strerror or e}") from None
    except OSError as e:
        raise _errors.InvalidArgument(f"cannot read {path} as FITS: {e}") from None
    raise _errors.InvalidArgument(f"{path} has no image HDU")


def fold(total: int) -> int:
    """A sum of 32-bit words folded to 32 bits with end-around carries (ones' complement)."""
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def ones_complement_sum(words: np.ndarray, start: int = 0) -> int:
    """32-bit ones'-complement sum of big-endian uint32 words (plus ``start``)."""
    return fold(int(words.sum(dtype=np.uint64)) + start)


def encode_checksum(value: int) -> str:
    """The 16 ASCII characters of CHECKSUM for an HDU whose sum (without them) is ``value``."""
    value = ~value & 0xFFFFFFFF
    chars = [0] * 16
    for i in range(4):
        byte = (value >> (8 * (3 - i))) & 0xFF
        q, r = byte // 4 + 0x30, byte % 4
        ch = [q + r, q, q, q]
        changed = True
        while changed:
            changed = False
            for j in (0, 2):
                while ch[j] in _EXCLUDE or ch[j + 1] in _EXCLUDE:
                    ch[j] += 1
                    ch[j + 1] -= 1
                    changed = True
        for j in range(4):
            chars[4 * j + i] = ch[j]
    return bytes(chars[15:] + chars[:15]).decode("ascii")


def _card(key: str, value: str, comment: str) -> bytes:
    text = f"{key:<8}= '{value}'"
    text = f"{text:<30} / {comment}" if comment else text
    return text[:CARD].ljust(CARD).encode("ascii")


def _value_card(key: str, value: Any, comment: str) -> bytes:
    return fits.Card(key, value, comment).image.encode("ascii")


def _word_sum(raw: Any) -> int:
    """Ones'-complement sum of a byte buffer read as big-endian 32-bit words (a partial last
    word padded with zeros, as the FITS block padding does)."""
    view = memoryview(raw).cast("B")
    n = view.nbytes
    whole = n // 4 * 4
    total = ones_complement_sum(np.frombuffer(view, dtype=">u4", count=whole // 4))
    if whole < n:
        tail = bytes(view[whole:]) + b"\0" * (4 - (n - whole))
        total = ones_complement_sum(np.frombuffer(tail, dtype=">u4"), total)
    return total


# Keywords the writer sets itself (the layout, the checksums, the unit): dropped from the
# frame's header, as calibctl's writer does.
_OWN_KEYS = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "BZERO",
             "BSCALE", "CHECKSUM", "DATASUM", "BUNIT", "END", "EXTNAME", "UTYPE"}


def _own(keyword: str) -> bool:
    k = keyword.upper()
    return k in _OWN_KEYS or (k.startswith("NAXIS") and k[5:].isdigit())


def header_images(header: Any) -> bytes:
    """The 80-character card images of a header's observation cards (astropy's
    `Header.tostring`: long strings as CONTINUE cards, HIERARCH keys), layout cards left out."""
    if header is None:
        return b""
    if not isinstance(header, fits.Header):
        header = fits.Header(header)
    kept = fits.Header([c for c in header.cards if not _own(c.keyword)])
    return kept.tostring(sep="", endcard=False, padding=False).encode("ascii")


class _Plane:
    """One image HDU to write: its layout cards, the big-endian bytes and their DATASUM."""

    __slots__ = ("cards", "data", "datasum")

    def __init__(self, cards: bytes, data: memoryview, datasum: int) -> None:
        self.cards = cards
        self.data = data
        self.datasum = datasum


def _layout(primary: bool, bitpix: int, shape: Tuple[int, int]) -> bytes:
    if primary:
        cards = [_value_card("SIMPLE", True, "conforms to FITS standard")]
    else:
        cards = [_value_card("XTENSION", "IMAGE", "Image extension")]
    cards += [_value_card("BITPIX", bitpix, "array data type"),
              _value_card("NAXIS", 2, "number of array dimensions"),
              _value_card("NAXIS1", shape[1], ""), _value_card("NAXIS2", shape[0], "")]
    if primary:
        cards.append(_value_card("EXTEND", True, ""))
    else:
        cards += [_value_card("PCOUNT", 0, "number of parameters"),
                  _value_card("GCOUNT", 1, "number of groups")]
    return b"".join(cards)


def primary_cards(shape: Tuple[int, int], header: Any, unit: str) -> bytes:
    """The data HDU's cards: layout, the frame's header cards, BUNIT."""
    return (_layout(True, -32, shape) + header_images(header)
            + _value_card("BUNIT", unit, "physical unit of the data"))


def uncert_cards(shape: Tuple[int, int]) -> bytes:
    return (_layout(False, -32, shape) + _value_card("EXTNAME", "UNCERT", "uncertainty of the data")
            + _value_card("UTYPE", "StdDevUncertainty", "standard deviation = sqrt(variance)"))


def mask_cards(shape: Tuple[int, int]) -> bytes:
    return _layout(False, 8, shape) + _value_card("EXTNAME", "MASK", "1 where DQ is not 0")


def dq_cards(shape: Tuple[int, int]) -> bytes:
    # uint16 as FITS stores it: int16 + BZERO 32768
    return (_layout(False, 16, shape) + _value_card("BSCALE", 1, "")
            + _value_card("BZERO", 32768, "") + _value_card("EXTNAME", "DQ", "data-quality bits"))


def header_size(cards: bytes) -> int:
    """Bytes of an HDU header of these cards plus CHECKSUM, DATASUM and END, in blocks."""
    n = len(cards) + 3 * CARD
    return n + (-n % BLOCK)


def _create(path: str, overwrite: bool, flags: int) -> int:
    if overwrite:
        try:
            os.unlink(path)  # as calibctl: a new file, not a truncated one
        except FileNotFoundError:
            pass
        except OSError as e:
            raise _errors.InvalidArgument(f"cannot replace {path}: {e.strerror or e}") from None
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | flags, 0o644)
    except FileExistsError:
        raise _errors.AlreadyExists(f"{path} exists; pass overwrite=True") from None


def write_file_image(path: str, image: np.ndarray, size: int, overwrite: bool = False) -> None:
    """Writes the first ``size`` bytes of ``image`` (a page-aligned uint8 buffer at least
    ``size`` rounded up to 4096 long) as the file ``path``, with O_DIRECT where the file
    system has it: nobody reads the output right away, so the page cache is not worth its
    copy (calibctl does the same). An existing file: `AlreadyExists` unless ``overwrite``."""
    direct = getattr(os, "O_DIRECT", 0)
    try:
        try:
            fd = _create(path, overwrite, direct) if direct else -1
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            fd = -1
        if fd < 0:
            direct = 0
            fd = _create(path, False, 0)
        try:
            view = memoryview(image).cast("B")
            length = size + (-size % 4096) if direct else size
            done = 0
            while done < length:
                try:
                    done += os.write(fd, view[done:length])
                except OSError as e:
                    if not direct or e.errno != errno.EINVAL:
                        raise
                    # The file system refused the direct write: through the page cache.
                    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~direct)
                    direct, length = 0, size
                    os.lseek(fd, 0, os.SEEK_SET)
                    done = 0
            if length != size:
                os.ftruncate(fd, size)
        finally:
            os.close(fd)
    except _errors.Error:
        raise
    except OSError as e:
        raise _errors.InvalidArgument(f"cannot write {path}: {e.strerror or e}") from None


def write_planes(path: str, planes: List[_Plane], overwrite: bool = False) -> None:
    """Writes the HDUs (header with checksums, data, block padding), one large write each.
    An existing file is `AlreadyExists` unless ``overwrite``."""
    try:
        f = open(path, "wb" if overwrite else "xb")
    except FileExistsError:
        raise _errors.AlreadyExists(f"{path} exists; pass overwrite=True") from None
    except OSError as e:
        raise _errors.InvalidArgument(f"cannot write {path}: {e.strerror or e}") from None
    with f:
        for p in planes:
            f.write(_hdu_header(p))
            f.write(p.data)
            pad = -p.data.nbytes % BLOCK
            if pad:
                f.write(b"\0" * pad)


def _hdu_header(plane: _Plane) -> bytes:
    """The plane's header block(s): its cards, DATASUM, and the CHECKSUM that makes the whole
    HDU sum to -0 (computed over these header bytes plus the data's sum)."""
    checksum_at = len(plane.cards)
    body = (plane.cards + _card("CHECKSUM", _ZERO_CHECKSUM, "HDU checksum")
            + _card("DATASUM", str(plane.datasum), "data unit checksum")
            + b"END".ljust(CARD))
    body += b" " * (-len(body) % BLOCK)
    total = ones_complement_sum(np.frombuffer(body, dtype=">u4"), plane.datasum)
    return (body[:checksum_at] + _card("CHECKSUM", encode_checksum(total), "HDU checksum")
            + body[checksum_at + CARD:])


class FitsWriter:
    """Writes calibrated frames as calibctl does — float32 data (BUNIT), UNCERT (standard
    deviation), MASK (uint8, 1 where DQ != 0) and DQ (uint16) image HDUs, CHECKSUM and DATASUM
    on each — straight to the file, without astropy's HDU machinery.

    Each plane is converted to big-endian with one vectorised pass into a buffer the writer
    keeps for the next frame of the same shape (fresh memory costs page faults), its DATASUM is
    summed with NumPy from the native array (a float's 32-bit word is the same number in either
    byte order), and the header's CHECKSUM is computed before anything is written: one pass
    over the pixels, one large write per plane. `CCDData.read` and astropy's checksum
    verification read the files (tests/python/test_wire.py).

    Thread safety: one writer per thread (its buffers are reused across calls).
    """

    def __init__(self) -> None:
        self._buffers: Dict[str, np.ndarray] = {}  # per plane: the last frame's shape

    def _buffer(self, plane: str, shape: Tuple[int, ...], dtype: str) -> np.ndarray:
        b = self._buffers.get(plane)
        if b is None or b.shape != tuple(shape) or b.dtype != np.dtype(dtype):
            b = np.empty(shape, dtype=dtype)
            self._buffers[plane] = b
        return b

    def _float_plane(self, name: str, cards: bytes, array: Any) -> _Plane:
        src = np.ascontiguousarray(array, dtype=np.float32)
        buf = self._buffer(name, src.shape, ">f4")
        np.copyto(buf, src)
        if sys.byteorder == "little":
            datasum = ones_complement_sum(src.view("<u4"))
        else:
            datasum = _word_sum(buf)
        return _Plane(cards, memoryview(buf).cast("B"), datasum)

    def planes(self, ccd: Any) -> List[_Plane]:
        """The HDUs of a calibrated frame (CCDData with ``.dq``), converted and summed."""
        data = np.asarray(ccd.data)
        if data.ndim != 2:
            raise _errors.InvalidArgument(f"a frame to write must be 2-D, not {data.shape}")
        shape = data.shape
        unit = ccd.unit.to_string() if ccd.unit is not None else "adu"
        out = [self._float_plane("DATA", primary_cards(shape, ccd.meta, unit), data)]
        if ccd.uncertainty is not None:
            out.append(self._float_plane("UNCERT", uncert_cards(shape), ccd.uncertainty.array))
        dq = getattr(ccd, "dq", None)
        if dq is not None:
            dq = np.asarray(dq)
            mask = self._buffer("MASK", shape, "u1")
            np.not_equal(dq, 0, out=mask.view(bool))
            out.append(_Plane(mask_cards(shape), memoryview(mask).cast("B"), _word_sum(mask)))
            stored = self._buffer("DQ", shape, ">u2")
            np.bitwise_xor(dq.astype(np.uint16, copy=False), np.uint16(0x8000), out=stored)
            out.append(_Plane(dq_cards(shape), memoryview(stored).cast("B"), _word_sum(stored)))
        return out

    def write(self, ccd: Any, path: str, overwrite: bool = False) -> None:
        """Writes ``ccd`` to ``path`` (an existing file: `AlreadyExists` unless ``overwrite``)."""
        write_planes(path, self.planes(ccd), overwrite)


_local = threading.local()


def write_calibrated(ccd: Any, path: str, overwrite: bool = False) -> None:
    """Writes a calibrated frame as calibctl does (see `FitsWriter`), with this thread's
    writer."""
    w = getattr(_local, "writer", None)
    if w is None:
        w = _local.writer = FitsWriter()
    w.write(ccd, path, overwrite=overwrite)
