"""Conversions between astropy/numpy values and calibd.v1 messages: header cards, pixel types,
times, frames given as CCDData / (ndarray, header) / paths, and calibrated results to CCDData.

The one place of the package that knows both astropy and the protobuf types.

Thread safety: pure functions.
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from . import _errors
from ._proto import types_pb2

# Keywords that describe the FITS layout, not the observation (the server ignores them; as in
# core/fits/header_io.cc IsStructuralKeyword).
_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "XTENSION", "BZERO",
               "BSCALE", "CHECKSUM", "DATASUM", "END", ""}
_COMMENTARY = {"HISTORY", "COMMENT"}

_PIXEL_TYPES = {
    np.dtype("uint8"): types_pb2.PIXEL_TYPE_UINT8,
    np.dtype("int16"): types_pb2.PIXEL_TYPE_INT16,
    np.dtype("uint16"): types_pb2.PIXEL_TYPE_UINT16,
    np.dtype("int32"): types_pb2.PIXEL_TYPE_INT32,
    np.dtype("uint32"): types_pb2.PIXEL_TYPE_UINT32,
    np.dtype("int64"): types_pb2.PIXEL_TYPE_INT64,
    np.dtype("float32"): types_pb2.PIXEL_TYPE_FLOAT32,
    np.dtype("float64"): types_pb2.PIXEL_TYPE_FLOAT64,
}

FrameLike = Union[CCDData, Tuple[np.ndarray, Any], str, "os.PathLike[str]"]


def _is_structural(key: str) -> bool:
    k = key.upper()
    return k in _STRUCTURAL or (k.startswith("NAXIS") and k[5:].isdigit())


def header_to_cards(header: Any) -> List[types_pb2.HeaderCard]:
    """``calibd.v1.HeaderCard`` messages of a FITS header (or a mapping of keyword → value).

    Structural keywords (SIMPLE, BITPIX, NAXISn, BZERO, ...) are left out.
    """
    cards: List[types_pb2.HeaderCard] = []
    if header is None:
        return cards
    if isinstance(header, fits.Header):
        items = ((c.keyword, c.value, c.comment) for c in header.cards)
    elif isinstance(header, Mapping):
        def _items():
            comments = getattr(header, "comments", None)
            for k, v in header.items():
                if isinstance(v, tuple) and len(v) == 2:  # (value, comment)
                    yield k, v[0], v[1]
                else:
                    c = ""
                    if comments is not None:
                        try:
                            c = comments[k]
                        except Exception:  # noqa: BLE001
                            c = ""
                    yield k, v, c
        items = _items()
    else:
        raise _errors.InvalidArgument(f"a header must be an astropy Header or a mapping, not "
                                      f"{type(header).__name__}")
    for key, value, comment in items:
        key = str(key)
        if _is_structural(key):
            continue
        card = types_pb2.HeaderCard(key=key)
        if key.upper() in _COMMENTARY:
            card.comment = str(value)
            cards.append(card)
            continue
        card.comment = str(comment or "")
        if isinstance(value, (bool, np.bool_)):
            card.bool_value = bool(value)
        elif isinstance(value, (int, np.integer)):
            card.int_value = int(value)
        elif isinstance(value, (float, np.floating)):
            card.double_value = float(value)
        elif isinstance(value, str):
            card.string_value = value
        elif value is None or isinstance(value, fits.card.Undefined):
            pass
        elif isinstance(value, _dt.datetime):
            card.string_value = value.isoformat()
        else:
            card.string_value = str(value)
        cards.append(card)
    return cards


def cards_to_header(cards: Iterable[types_pb2.HeaderCard]) -> fits.Header:
    """An astropy `~astropy.io.fits.Header` of ``calibd.v1.HeaderCard`` messages."""
    out = []
    for c in cards:
        key = c.key
        kind = c.WhichOneof("value")
        if key.upper() in _COMMENTARY or key == "":
            out.append(fits.Card(key, c.comment))
            continue
        value: Any
        if kind == "bool_value":
            value = c.bool_value
        elif kind == "int_value":
            value = c.int_value
        elif kind == "double_value":
            value = c.double_value
        elif kind == "string_value":
            value = c.string_value
        else:
            value = fits.card.UNDEFINED
        if len(key) > 8 or " " in key:
            key = "HIERARCH " + key
        out.append(fits.Card(key, value, c.comment))
    return fits.Header(out)


def pixel_type(dtype: np.dtype) -> int:
    """The ``PixelType`` of a numpy dtype (byte order ignored)."""
    t = _PIXEL_TYPES.get(np.dtype(dtype).newbyteorder("="))
    if t is None:
        raise _errors.InvalidArgument(
            f"pixel type {np.dtype(dtype)} is not supported; use one of "
            + ", ".join(str(d) for d in _PIXEL_TYPES))
    return t


def little_endian_pixels(data: np.ndarray) -> np.ndarray:
    """The array as C-contiguous little-endian pixels (the array itself when it already is)."""
    a = np.asarray(data)
    if a.ndim != 2 or a.size == 0:
        # Caught here: the server ends the whole stream on a FrameHeader without pixels.
        raise _errors.InvalidArgument(f"a frame must be 2-D and not empty, not of shape {a.shape}")
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    pixel_type(a.dtype)
    target = a.dtype.newbyteorder("<")
    if a.dtype != target or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, dtype=target)
    return a


def frame_id_of(path: str) -> str:
    return os.path.basename(path)


def frame_id(frame: Any, index: int) -> str:
    """The id a frame will carry: its file name, the id given in ``(array, header, id)``, a
    CCDData's FRAMEID keyword, else ``frame_NNNN`` (its position)."""
    if isinstance(frame, (str, os.PathLike)):
        return frame_id_of(os.fspath(frame))
    if isinstance(frame, tuple) and len(frame) == 3:
        return str(frame[2])
    if isinstance(frame, CCDData) and frame.meta and frame.meta.get("FRAMEID"):
        return str(frame.meta.get("FRAMEID"))
    return f"frame_{index:04d}"


def load_frame(frame: FrameLike, index: int) -> Tuple[str, np.ndarray, Any]:
    """(frame id, pixels, header) of one input of `calibrate` or `build`."""
    fid = frame_id(frame, index)
    if isinstance(frame, (str, os.PathLike)):
        from ._fitsio import read_fits_frame
        data, header = read_fits_frame(os.fspath(frame))
        return fid, data, header
    if isinstance(frame, CCDData):
        return fid, np.asarray(frame.data), frame.meta
    if isinstance(frame, tuple) and len(frame) in (2, 3):
        return fid, np.asarray(frame[0]), frame[1]
    if isinstance(frame, np.ndarray):
        return fid, frame, None
    raise _errors.InvalidArgument(
        f"input {index}: give a CCDData, an (ndarray, header) pair or a FITS path, not "
        f"{type(frame).__name__}")


# --- times -------------------------------------------------------------------------------

TimeLike = Union[_dt.datetime, _dt.date, str, float, Any]


def to_datetime(t: TimeLike) -> _dt.datetime:
    """A UTC `datetime` of a datetime (naive = UTC), a date, an ISO-8601 string, an astropy
    `~astropy.time.Time`, or Unix seconds."""
    if hasattr(t, "to_datetime") and hasattr(t, "jd"):  # astropy Time
        d = t.utc.to_datetime()
        return d.replace(tzinfo=_dt.timezone.utc)
    if isinstance(t, _dt.datetime):
        return t.replace(tzinfo=_dt.timezone.utc) if t.tzinfo is None else t.astimezone(
            _dt.timezone.utc)
    if isinstance(t, _dt.date):
        return _dt.datetime(t.year, t.month, t.day, tzinfo=_dt.timezone.utc)
    if isinstance(t, (int, float)):
        return _dt.datetime.fromtimestamp(float(t), _dt.timezone.utc)
    if isinstance(t, str):
        s = t.strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        try:
            return to_datetime(_dt.datetime.fromisoformat(s))
        except ValueError:
            raise _errors.InvalidArgument(f"{t!r} is not an ISO-8601 time") from None
    raise _errors.InvalidArgument(f"{t!r} is not a time")


def set_timestamp(ts: Any, t: TimeLike) -> None:
    """Fills a google.protobuf.Timestamp."""
    d = to_datetime(t)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    delta = d - epoch
    seconds = delta.days * 86400 + delta.seconds
    ts.seconds = seconds
    ts.nanos = delta.microseconds * 1000


def from_timestamp(ts: Any) -> Optional[_dt.datetime]:
    """A UTC datetime of a Timestamp; None when unset (all zero)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return (_dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
            + _dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000))


# --- results -------------------------------------------------------------------------------

def unit_name(unit: int) -> str:
    return "electron" if unit == types_pb2.OUTPUT_UNIT_ELECTRON else "adu"


def ccddata_from_planes(cls: type, data: np.ndarray, variance: Optional[np.ndarray],
                        mask: Optional[np.ndarray], header: fits.Header, unit: str) -> CCDData:
    """A CCDData (or subclass ``cls``) with StdDevUncertainty = sqrt(variance) and the mask
    (DQ != 0).

    ``variance`` is the caller's scratch array: its square root is taken in place (the float32
    square root is correctly rounded, so this equals calibctl's UNCERT plane bit for bit).
    """
    uncertainty = None
    if variance is not None:
        uncertainty = StdDevUncertainty(np.sqrt(variance, out=variance), copy=False)
    header = header.copy()
    header.remove("BUNIT", ignore_missing=True, remove_all=True)
    ccd = cls(data, unit=u.Unit(unit), uncertainty=uncertainty, mask=mask, meta=header,
              copy=False)
    return ccd
