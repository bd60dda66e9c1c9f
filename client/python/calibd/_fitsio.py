"""FITS files for the client: reading a raw frame, and writing a calibrated one the way calibctl
does (data, UNCERT, MASK, DQ; CHECKSUM and DATASUM on every HDU) — fast.

astropy computes FITS checksums in Python per 2880-byte block, which costs seconds for a
4096x4096 frame (more than the calibration). Here the file is written with placeholder
CHECKSUM/DATASUM cards, then each HDU's 32-bit ones'-complement sum is taken with NumPy over the
file's bytes and the two cards are patched in place (FITS standard, appendix J: DATASUM is the
data's sum, CHECKSUM the 16-character encoding of the complemented sum over header and data, so
that the whole HDU sums to -0).

Thread safety: pure functions over their own files.
"""
from __future__ import annotations

import mmap
import os
import warnings
from typing import Any, List, Tuple

import numpy as np
from astropy.io import fits

from . import _errors

BLOCK = 2880
CARD = 80
_ZERO_CHECKSUM = "0000000000000000"
# Encoded checksum characters avoid the punctuation between the digits and letters.
_EXCLUDE = tuple(range(0x3A, 0x41)) + tuple(range(0x5B, 0x61))


def read_fits_frame(path: str) -> Tuple[np.ndarray, fits.Header]:
    """Pixels and header of the first image HDU of a FITS file (tile-compressed too).

    Unsigned 16-bit images (BITPIX 16, BZERO 32768) are read as stored and converted in one
    pass to little-endian uint16, instead of astropy's scaling then a byte swap.
    """
    try:
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


def ones_complement_sum(words: np.ndarray, start: int = 0) -> int:
    """32-bit ones'-complement sum of big-endian uint32 words (plus ``start``)."""
    total = int(words.sum(dtype=np.uint64)) + start
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


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


def _data_bytes(cards: List[bytes], primary: bool) -> int:
    values = {}
    for c in cards:
        key = c[:8].decode("ascii").strip()
        if c[8:10] == b"= ":
            v = c[10:].split(b"/")[0].strip()
            values[key] = v
    bitpix = abs(int(values["BITPIX"]))
    naxis = int(values["NAXIS"])
    if naxis == 0:
        return 0
    n = 1
    for i in range(1, naxis + 1):
        n *= int(values[f"NAXIS{i}"])
    pcount = 0 if primary else int(values.get("PCOUNT", b"0"))
    gcount = 1 if primary else int(values.get("GCOUNT", b"1"))
    return bitpix // 8 * gcount * (pcount + n)


def add_checksums(path: str) -> None:
    """Fills the placeholder CHECKSUM/DATASUM cards of every HDU of ``path`` in place."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        mm = mmap.mmap(f.fileno(), size)
        try:
            off = 0
            primary = True
            while off < size:
                cards: List[bytes] = []
                pos = off
                end = None
                while end is None:
                    if pos + BLOCK > size:
                        raise _errors.Internal(f"{path}: truncated header at byte {pos}")
                    for k in range(pos, pos + BLOCK, CARD):
                        card = mm[k:k + CARD]
                        cards.append(card)
                        if card[:8] == b"END     ":
                            end = pos + BLOCK
                            break
                    pos += BLOCK
                header_end = end
                nbytes = _data_bytes(cards, primary)
                padded = (nbytes + BLOCK - 1) // BLOCK * BLOCK
                words = np.frombuffer(mm, dtype=">u4", count=padded // 4, offset=header_end)
                datasum = ones_complement_sum(words)
                del words
                where = {}
                for i, card in enumerate(cards):
                    key = card[:8]
                    if key in (b"CHECKSUM", b"DATASUM "):
                        where[key] = off + i * CARD
                if len(where) != 2:
                    raise _errors.Internal(f"{path}: an HDU lacks CHECKSUM/DATASUM placeholders")
                mm[where[b"DATASUM "]:where[b"DATASUM "] + CARD] = _card(
                    "DATASUM", str(datasum), "data unit checksum")
                mm[where[b"CHECKSUM"]:where[b"CHECKSUM"] + CARD] = _card(
                    "CHECKSUM", _ZERO_CHECKSUM, "HDU checksum")
                hwords = np.frombuffer(mm, dtype=">u4", count=(header_end - off) // 4,
                                       offset=off)
                total = ones_complement_sum(hwords, datasum)
                del hwords
                mm[where[b"CHECKSUM"]:where[b"CHECKSUM"] + CARD] = _card(
                    "CHECKSUM", encode_checksum(total), "HDU checksum")
                off = header_end + padded
                primary = False
            mm.flush()
        finally:
            mm.close()


def write_calibrated(ccd: Any, path: str, overwrite: bool = False) -> None:
    """Writes a calibrated frame as calibctl does: float32 data (BUNIT), UNCERT (standard
    deviation), MASK (uint8, 1 where DQ != 0) and DQ (uint16) extensions, CHECKSUM on every HDU.
    """
    header = ccd.meta.copy() if hasattr(ccd.meta, "copy") else fits.Header(ccd.meta)
    if not isinstance(header, fits.Header):
        header = fits.Header(header)
    for key in ("CHECKSUM", "DATASUM"):
        header.remove(key, ignore_missing=True, remove_all=True)
    header["BUNIT"] = (ccd.unit.to_string(), "physical unit of the data")

    def checked(h: fits.Header) -> fits.Header:
        h["CHECKSUM"] = (_ZERO_CHECKSUM, "HDU checksum")
        h["DATASUM"] = ("0", "data unit checksum")
        return h

    hdus = [fits.PrimaryHDU(np.asarray(ccd.data, dtype=np.float32), header=checked(header))]
    if ccd.uncertainty is not None:
        h = fits.Header()
        h["EXTNAME"] = ("UNCERT", "uncertainty of the data")
        h["UTYPE"] = ("StdDevUncertainty", "standard deviation = sqrt(variance)")
        hdus.append(fits.ImageHDU(np.asarray(ccd.uncertainty.array, dtype=np.float32),
                                  checked(h)))
    dq = getattr(ccd, "dq", None)
    if dq is not None:
        h = fits.Header()
        h["EXTNAME"] = ("MASK", "1 where DQ is not 0")
        hdus.append(fits.ImageHDU((dq != 0).astype(np.uint8), checked(h)))
        h = fits.Header()
        h["EXTNAME"] = ("DQ", "data-quality bits")
        hdus.append(fits.ImageHDU(dq, checked(h)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        fits.HDUList(hdus).writeto(path, overwrite=overwrite, checksum=False)
    add_checksums(path)
