"""The Calibrate protocol, shared by the blocking and the asyncio client: the FrameHeader
template built from `calibrate`'s options, one frame's request messages (its header, then
memoryview chunks of its pixels), and the assembly of a result's header and plane chunks into a
`CalibratedFrame` (or a `FrameError`).

The loops that drive a stream (threads for `calibd.Client`, tasks for `calibd.aio.Client`) live
in client.py and aio.py; everything they have in common is here.

Thread safety: a `ResultAssembler` belongs to one reader; the functions are pure.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _convert, _errors, _wire
from ._proto import calibrator_pb2, types_pb2
from ._types import AppliedMaster, CalibratedFrame, TrailEntry, statistics_dict

DEFAULT_WINDOW = 4  # frames in flight on one stream (sent, result not yet fully received)

_PLANES = {"data": types_pb2.PLANE_DATA, "variance": types_pb2.PLANE_VARIANCE,
           "dq": types_pb2.PLANE_DQ}
_UNITS = {"adu": types_pb2.OUTPUT_UNIT_ADU, "electron": types_pb2.OUTPUT_UNIT_ELECTRON}
_POLICIES = {"strict": types_pb2.SELECTION_POLICY_STRICT,
             "nearest": types_pb2.SELECTION_POLICY_NEAREST}
# Where the dark comes from (RecipeOverrides.dark_policy, types.proto DarkPolicy).
_DARK_SOURCES = {"measured": "DARK_POLICY_MEASURED", "synthesized": "DARK_POLICY_SYNTHESIZED",
                 "measured_else_synthesized": "DARK_POLICY_MEASURED_ELSE_SYNTHESIZED"}
# The earlier values of dark_policy, about the dark's scaling: → (dark, dark_scale).
_DARK_SCALING = {"scale": (None, True), "exact": (None, False), "skip": (False, None)}
# The noise products' switches (RecipeOverrides): None = use when selectable.
NOISE_SWITCHES = ("read_noise_map", "gain_product", "bad_pixels")
_RECIPE_BOOLS = ("overscan", "trim", "bias", "dark", "flat", "variance", "dark_scale")
_RECIPE_STRINGS = ("overscan_statistic", "overscan_fit", "overscan_axis", "overscan_section",
                   "trim_section", "flat_norm")
_RECIPE_NUMBERS = ("gain", "read_noise", "saturation", "flat_value", "flat_floor", "exptime")


def _choice(name: str, value: str, choices: Mapping[str, Any]) -> Any:
    try:
        return choices[value]
    except (KeyError, TypeError):
        raise _errors.InvalidArgument(
            f"{name}={value!r}: give one of {', '.join(map(repr, choices))}") from None


def _has_field(message: Any, name: str) -> bool:
    return name in message.DESCRIPTOR.fields_by_name


def recipe_overrides(recipe: Optional[Mapping[str, Any]] = None,
                     dark_policy: Optional[str] = None,
                     noise: Optional[Mapping[str, Optional[bool]]] = None
                     ) -> types_pb2.RecipeOverrides:
    """``RecipeOverrides`` of a dict of its field names (``{"flat_norm": "clipped_mean"}``).

    ``dark_policy``: where the dark comes from — "measured" (a master dark), "synthesized"
    (from the detector's noise_model, else dark_current product, for each frame's exposure
    time and EM gain) or "measured_else_synthesized"; unset = the detector's default. The
    earlier values "scale" (scale the dark by exposure, the default), "exact" (no scaling)
    and "skip" (no dark) still set the dark's scaling.

    ``noise``: the switches ``read_noise_map``, ``gain_product``, ``bad_pixels`` — True =
    required, False = not used, None = used when one is selectable.
    """
    r = types_pb2.RecipeOverrides()
    for key, value in (recipe or {}).items():
        if value is None:
            continue
        if key in _RECIPE_BOOLS:
            setattr(r, key, bool(value))
        elif key in _RECIPE_STRINGS:
            setattr(r, key, str(value))
        elif key in _RECIPE_NUMBERS:
            setattr(r, key, float(value))
        elif key == "overscan_poly_order":
            r.overscan_poly_order = int(value)
        elif key == "dark_policy" and dark_policy is None:
            dark_policy = value
        elif _has_field(r, key):
            setattr(r, key, value)  # a field added to the API after this client
        else:
            raise _errors.InvalidArgument(f"unknown recipe option {key!r}")
    if dark_policy is not None:
        if dark_policy in _DARK_SCALING:
            dark, scale = _DARK_SCALING[dark_policy]
            if dark is not None:
                r.dark = dark
            if scale is not None:
                r.dark_scale = scale
        else:
            enum = _choice("dark_policy", dark_policy, {**_DARK_SOURCES, **_DARK_SCALING})
            if not _has_field(r, "dark_policy"):
                raise _errors.Unimplemented(
                    f"dark_policy={dark_policy!r}: this calibd API has no dark policies "
                    "(RecipeOverrides.dark_policy); update the client and server")
            r.dark_policy = types_pb2.DarkPolicy.Value(enum)
    for key, value in (noise or {}).items():
        if value is None:
            continue
        if key not in NOISE_SWITCHES:
            raise _errors.InvalidArgument(f"unknown noise switch {key!r}; give one of "
                                          f"{', '.join(NOISE_SWITCHES)}")
        if not _has_field(r, key):
            raise _errors.Unimplemented(
                f"{key}: this calibd API cannot switch noise products (RecipeOverrides.{key}); "
                "update the client and server")
        setattr(r, key, bool(value))
    return r


def selection_options(policy: str = "strict", pins: Optional[Mapping[str, Any]] = None,
                      max_age: Optional[float] = None) -> types_pb2.SelectionOptions:
    """``SelectionOptions``: policy, pins ``{kind: version number or sha256}``, max_age [s]."""
    s = types_pb2.SelectionOptions(policy=_choice("policy", policy, _POLICIES))
    if max_age is not None:
        if hasattr(max_age, "total_seconds"):
            max_age = max_age.total_seconds()
        s.max_age.seconds = int(max_age)
        s.max_age.nanos = int(round((float(max_age) - int(max_age)) * 1e9))
    for kind, which in (pins or {}).items():
        p = s.pins.add(kind=kind)
        if isinstance(which, str) and len(which) == 64:
            p.sha256 = which
        elif hasattr(which, "sha256") and hasattr(which, "version"):  # a MasterVersion
            p.sha256 = which.sha256
        else:
            try:
                p.version = int(which)
            except (TypeError, ValueError):
                raise _errors.InvalidArgument(
                    f"pin {kind}={which!r}: give a version number or a sha256") from None
    return s


def frame_template(detector: Optional[str], unit: str = "adu",
                   planes: Optional[Sequence[str]] = None, policy: str = "strict",
                   pins: Optional[Mapping[str, Any]] = None, max_age: Optional[float] = None,
                   dark_policy: Optional[str] = None,
                   recipe: Optional[Mapping[str, Any]] = None,
                   noise: Optional[Mapping[str, Optional[bool]]] = None
                   ) -> types_pb2.FrameHeader:
    """The options every frame of one `calibrate` call shares, as a FrameHeader."""
    h = types_pb2.FrameHeader(detector=detector or "", unit=_choice("unit", unit, _UNITS))
    if planes is not None:
        if isinstance(planes, str):
            planes = [p.strip() for p in planes.split(",") if p.strip()]
        for p in planes:
            h.planes.append(_choice("planes", p, _PLANES))
    h.selection.CopyFrom(selection_options(policy, pins, max_age))
    h.recipe.CopyFrom(recipe_overrides(recipe, dark_policy, noise))
    return h


def frame_header(template: types_pb2.FrameHeader, frame_id: str, pixels: np.ndarray,
                 header: Any) -> types_pb2.FrameHeader:
    """The FrameHeader of one frame: the template plus its id, cards, shape and pixel type."""
    h = types_pb2.FrameHeader()
    h.CopyFrom(template)
    h.frame_id = frame_id
    h.cards.extend(_convert.header_to_cards(header))
    h.height, h.width = pixels.shape
    h.pixel_type = _convert.pixel_type(pixels.dtype)
    if not h.detector:
        # A header's DETECTOR names the detector only in calibd's "instrument/detector" form.
        det = _header_value(header, "DETECTOR") if header is not None else None
        if not det or "/" not in str(det):
            raise _errors.InvalidArgument(
                f"frame {frame_id!r}: no detector; pass detector= (e.g. 'demo/ccd0')")
        h.detector = str(det)
    return h


def _header_value(header: Any, key: str) -> Any:
    try:
        return header.get(key)
    except Exception:  # noqa: BLE001
        return None


def pixel_chunks(pixels: np.ndarray, field_chunk=_wire.Chunk) -> Iterator[_wire.Chunk]:
    """≤ 1 MiB memoryview slices of a C-contiguous little-endian array (no copy)."""
    view = memoryview(pixels).cast("B")
    n = view.nbytes
    for off in range(0, n, _wire.MAX_CHUNK_BYTES):
        yield field_chunk(view[off:off + _wire.MAX_CHUNK_BYTES])


@dataclasses.dataclass
class Item:
    """One input of the stream, in order: sent (a result will come) or failed locally."""
    index: int
    frame_id: str
    error: Optional[BaseException] = None  # a local failure (not sent)
    fatal: bool = False                    # the input iterable itself raised: stop the stream


def prepare(template: types_pb2.FrameHeader, frame: Any, index: int):
    """(frame id, request header message, pixels) of one input; raises `calibd.Error`."""
    fid, data, header = _convert.load_frame(frame, index)
    pixels = _convert.little_endian_pixels(data)
    return fid, calibrator_pb2.CalibrateRequest(header=frame_header(template, fid, pixels,
                                                                    header)), pixels


def local_error(e: BaseException, item: Item) -> _errors.FrameError:
    if isinstance(e, _errors.Error):
        return _errors.FrameError(e.message, e.code, item.frame_id, item.index)
    return _errors.FrameError(f"{type(e).__name__}: {e}", _errors.grpc.StatusCode.INVALID_ARGUMENT,
                              item.frame_id, item.index)


class ArrayPool:
    """Plane arrays handed out before and since dropped by the caller, for reuse.

    Fresh memory is expensive here: a 4096² frame's planes are 176 MB, each allocation is a new
    mmap the kernel must zero on first touch (about 0.25 s of CPU a frame, more than everything
    else the client does). An array the pool handed out is reused once nothing but the pool
    refers to it (no CCDData, view, memoryview or name holds it: CPython's reference count
    says so exactly), so a stream whose consumer keeps only the latest results reuses the same
    few buffers. A consumer that keeps every result just gets fresh arrays.
    """

    def __init__(self, limit: int) -> None:
        self._arrays: List[np.ndarray] = []
        self._limit = limit

    def empty(self, shape: tuple, dtype: str) -> np.ndarray:
        want = np.dtype(dtype)
        for a in self._arrays:
            # References: the pool's list, the loop variable, getrefcount's argument.
            if a.shape == shape and a.dtype == want and sys.getrefcount(a) == 3:
                return a
        a = np.empty(shape, dtype=want)
        self._arrays.append(a)
        if len(self._arrays) > self._limit:
            del self._arrays[0]
        return a


class ResultAssembler:
    """Collects one result (a ResultHeader, then its plane chunks) into a CalibratedFrame.

    ``add`` returns the finished `CalibratedFrame` or `FrameError`, or None while incomplete.
    Chunk bytes are copied once, from gRPC's received buffer into the plane's array (from an
    `ArrayPool`).
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._pool = ArrayPool(4 * (window + 2))
        self._header: Optional[calibrator_pb2.ResultHeader] = None
        self._planes: List[int] = []
        self._arrays: Dict[int, np.ndarray] = {}
        self._views: List[memoryview] = []
        self._plane = 0
        self._filled = 0
        self._index = -1

    @property
    def active(self) -> bool:
        return self._header is not None

    def add(self, message: Union[calibrator_pb2.ResultHeader, _wire.ResultChunk],
            index: int) -> Union[CalibratedFrame, _errors.FrameError, None]:
        if isinstance(message, calibrator_pb2.ResultHeader):
            if self._header is not None:
                raise _errors.Internal("protocol error from the server: a result header arrived "
                                       "before the previous result was complete")
            return self._start(message, index)
        if self._header is None or self._plane >= len(self._planes):
            raise _errors.Internal("protocol error from the server: a result chunk without a "
                                   "result in progress")
        plane = self._planes[self._plane]
        if message.plane != plane:
            raise _errors.Internal(f"protocol error from the server: chunk of plane "
                                   f"{message.plane} while plane {plane} is incomplete")
        view = self._views[self._plane]
        n = message.data.nbytes
        if self._filled + n > view.nbytes:
            raise _errors.Internal(f"protocol error from the server: plane {plane} of "
                                   f"{self._header.frame_id!r} exceeds {view.nbytes} bytes")
        view[self._filled:self._filled + n] = message.data
        self._filled += n
        if self._filled == view.nbytes:
            self._plane += 1
            self._filled = 0
        return self._finish() if self._plane >= len(self._planes) else None

    def _start(self, h: calibrator_pb2.ResultHeader, index: int):
        self._index = index
        if h.status.code != 0:
            return _errors.FrameError(h.status.message, h.status.code, h.frame_id, index)
        if h.width <= 0 or h.height <= 0:
            raise _errors.Internal(f"protocol error from the server: result for "
                                   f"{h.frame_id!r} has shape {h.width}x{h.height}")
        self._header = h
        self._planes = list(h.planes)
        self._arrays = {}
        self._views = []
        for p in self._planes:
            dtype = "<u2" if p == types_pb2.PLANE_DQ else "<f4"
            a = self._pool.empty((h.height, h.width), dtype)
            self._arrays[p] = a
            self._views.append(memoryview(a).cast("B"))
        self._plane = 0
        self._filled = 0
        return self._finish() if not self._planes else None

    def _finish(self) -> CalibratedFrame:
        h = self._header
        assert h is not None
        self._header = None
        a = self._arrays
        data = a.get(types_pb2.PLANE_DATA)
        if data is None:  # CCDData needs data; a result without it carries zeros
            data = np.zeros((h.height, h.width), dtype=np.float32)
        dq = a.get(types_pb2.PLANE_DQ)
        mask = None
        if dq is not None:
            mask = np.not_equal(dq, 0, out=self._pool.empty(dq.shape, "bool"))
        frame = _convert.ccddata_from_planes(
            CalibratedFrame, data, a.get(types_pb2.PLANE_VARIANCE), mask,
            _convert.cards_to_header(h.cards), _convert.unit_name(h.unit))
        frame.dq = a.get(types_pb2.PLANE_DQ)
        frame.provenance = [AppliedMaster.from_proto(m) for m in h.masters]
        frame.trail = [TrailEntry.from_proto(t) for t in h.trail]
        frame.statistics = statistics_dict(h.statistics)
        frame.frame_id = h.frame_id
        frame.compute_seconds = h.compute_seconds
        self._arrays = {}
        self._views = []
        del a, data, dq, mask
        return frame


def is_frame_list(frames: Any) -> bool:
    return isinstance(frames, (list, tuple)) and not (
        len(frames) in (2, 3) and isinstance(frames[0], np.ndarray) and not isinstance(
            frames[1], np.ndarray))


def as_iterable(frames: Any) -> Iterable[Any]:
    """A single frame (CCDData, path, (array, header)) as a one-item list; iterables as is."""
    from astropy.nddata import CCDData
    import os
    if isinstance(frames, (CCDData, str, os.PathLike, np.ndarray)):
        return [frames]
    if isinstance(frames, tuple) and not is_frame_list(frames):
        return [frames]
    return frames
