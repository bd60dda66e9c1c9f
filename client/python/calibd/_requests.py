"""Request messages of the unary and client-streaming calls, and conversion of their responses,
shared by `calibd.Client` and `calibd.aio.Client` (which only differ in how they wait).

Also the channel setup (TLS, token metadata, reconnect backoff) and the options of `build`.

Thread safety: pure functions.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
from google.protobuf import json_format

from . import _calibrate, _convert, _errors, _noise, _wire
from ._proto import builder_pb2, store_pb2, types_pb2
from ._types import DqBit, MasterVersion

DEFAULT_TIMEOUT = 60.0
_CHANNEL_OPTIONS = [
    # The 4 MiB message cap is never raised: chunks are ≤ 1 MiB.
    ("grpc.enable_retries", 0),
    # A restarted server is found again within a second: short reconnect backoff, and the
    # address may be re-resolved after a failed connect without gRPC's 30 s cool-down (with it,
    # a call fails UNAVAILABLE for seconds after the server is back).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.dns_min_time_between_resolutions_ms", 100),
]


@dataclasses.dataclass
class TLS:
    """TLS settings: a CA bundle (PEM file) to check the server; plus a certificate and key for
    mutual TLS. ``TLS()`` uses the system's roots.
    """
    ca: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None
    server_name: Optional[str] = None


def _read(path: Optional[str], what: str) -> Optional[bytes]:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise _errors.NotFound(f"cannot read the {what} file {path}: {e.strerror}") from None


def channel_args(tls: Union[None, bool, TLS, Mapping[str, str]]):
    """(credentials or None for plaintext, options) of the Client's ``tls`` argument."""
    options = list(_CHANNEL_OPTIONS)
    if tls is None or tls is False:
        return None, options
    if tls is True:
        tls = TLS()
    elif isinstance(tls, Mapping):
        tls = TLS(**tls)
    if (tls.cert is None) != (tls.key is None):
        raise _errors.InvalidArgument("tls cert and key go together; give both")
    creds = grpc.ssl_channel_credentials(root_certificates=_read(tls.ca, "CA"),
                                         private_key=_read(tls.key, "TLS key"),
                                         certificate_chain=_read(tls.cert, "TLS certificate"))
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return creds, options


def metadata(token: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


# --- detectors ---------------------------------------------------------------------------

def detector_spec(spec: Union[str, "os.PathLike[str]", Mapping[str, Any],
                              types_pb2.DetectorSpec]) -> types_pb2.DetectorSpec:
    """A DetectorSpec of a SPEC.json path, its dict, or a message.

    The JSON form is calibctl's (``configuration_keys`` maps a kind to a list of keys).
    """
    if isinstance(spec, types_pb2.DetectorSpec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        try:
            with open(spec, encoding="utf-8") as f:
                spec = json.load(f)
        except OSError as e:
            raise _errors.NotFound(f"cannot read {os.fspath(spec)}: {e.strerror}") from None
        except ValueError as e:
            raise _errors.InvalidArgument(f"{os.fspath(spec)} is not JSON: {e}") from None
    d = dict(spec)
    ck = d.get("configuration_keys")
    if isinstance(ck, Mapping):
        d["configuration_keys"] = {k: ({"keys": list(v)} if isinstance(v, (list, tuple)) else v)
                                   for k, v in ck.items()}
    try:
        return json_format.ParseDict(d, types_pb2.DetectorSpec())
    except json_format.ParseError as e:
        raise _errors.InvalidArgument(f"bad detector spec: {e}") from None


def detector_dict(spec: types_pb2.DetectorSpec) -> Dict[str, Any]:
    """A DetectorSpec as the SPEC.json-style dict (plus version, created_at, actor)."""
    d = json_format.MessageToDict(spec, preserving_proto_field_name=True)
    ck = d.get("configuration_keys")
    if ck:
        d["configuration_keys"] = {k: v.get("keys", []) for k, v in ck.items()}
    if "version" in d:
        d["version"] = int(d["version"])
    return d


def dq_bits(resp: store_pb2.GetDqBitsResponse) -> List[DqBit]:
    return [DqBit(b.bit, b.name, b.description) for b in resp.bits]


# --- paging ------------------------------------------------------------------------------

def has_paging(request_type: Any) -> bool:
    return "page_token" in request_type.DESCRIPTOR.fields_by_name


def set_page(request: Any, page_size: Optional[int], token: str) -> None:
    """Sets page_size/page_token when the API has them (older servers page nothing)."""
    if has_paging(type(request)):
        if page_size:
            request.page_size = int(page_size)
        request.page_token = token


def next_token(response: Any) -> str:
    return getattr(response, "next_page_token", "") or ""


# --- masters ------------------------------------------------------------------------------

def list_masters_request(detector: Optional[str], kind: Optional[str]) -> Any:
    return store_pb2.ListMastersRequest(detector=detector or "", kind=kind or "")


def history_request(detector: str, kind: str, configuration: Optional[Mapping[str, str]]) -> Any:
    return store_pb2.HistoryRequest(detector=detector, kind=kind,
                                    configuration=dict(configuration or {}))


def get_master_request(detector: str, kind: str, version: Optional[int], at: Any,
                       configuration: Optional[Mapping[str, str]]) -> Any:
    r = store_pb2.GetMasterRequest(detector=detector, kind=kind,
                                   configuration=dict(configuration or {}))
    if version is not None and at is not None:
        raise _errors.InvalidArgument("give version= or at=, not both")
    if version is not None:
        r.version = int(version)
    elif at is not None:
        _convert.set_timestamp(r.at, at)
    else:
        raise _errors.InvalidArgument("give version= (a number) or at= (a time)")
    return r


class MasterDownload:
    """Collects a GetMaster stream: metadata first, then the FITS bytes, hashed as they come."""

    def __init__(self) -> None:
        self.meta: Optional[Any] = None
        self.parts: List[bytes] = []
        self.sha = hashlib.sha256()

    def add(self, resp: store_pb2.GetMasterResponse) -> None:
        if resp.HasField("metadata"):
            self.meta = resp.metadata
        else:
            self.sha.update(resp.chunk)
            self.parts.append(resp.chunk)

    def finish(self) -> Tuple[MasterVersion, bytes]:
        if self.meta is None:
            raise _errors.Internal("the server sent no metadata for the master")
        digest = self.sha.hexdigest()
        if digest != self.meta.sha256:
            raise _errors.DataLoss(f"downloaded bytes hash to {digest}, not {self.meta.sha256}; "
                                   "retry the download")
        return MasterVersion.from_proto(self.meta), b"".join(self.parts)


def master_ccddata(data: bytes, mv: MasterVersion):
    """A downloaded master's FITS bytes as CCDData (unit from BUNIT, else adu); a noise
    product (several maps) as a `calibd.NoiseProduct`, a dict of CCDData by EXTNAME."""
    import io
    from astropy.io import fits
    from astropy.nddata import CCDData, StdDevUncertainty
    from astropy import units as u
    import numpy as np
    with fits.open(io.BytesIO(data), memmap=False) as hdul:
        if _noise.is_noise_product(hdul):
            return _noise.noise_product(hdul, mv)
        prim = next(h for h in hdul if h.is_image and h.data is not None)
        header = prim.header.copy()
        unit = header.get("BUNIT", "adu")
        arr = np.asarray(prim.data)
        unc = mask = dq = None
        for h in hdul:
            name = h.name.upper()
            if name == "UNCERT" and h.data is not None:
                unc = StdDevUncertainty(np.asarray(h.data))
            elif name == "MASK" and h.data is not None:
                mask = np.asarray(h.data) != 0
            elif name == "DQ" and h.data is not None:
                dq = np.asarray(h.data)
    # CHECKSUM/DATASUM describe the stored file, not the data: a CCDData written again would
    # carry stale ones.
    for key in ("BUNIT", "CHECKSUM", "DATASUM"):
        header.remove(key, ignore_missing=True, remove_all=True)
    try:
        unit_value = u.Unit(unit)
    except ValueError:
        unit_value = u.adu
    ccd = CCDData(arr, unit=unit_value, uncertainty=unc, mask=mask, meta=header)
    ccd.dq = dq  # type: ignore[attr-defined]
    ccd.master = mv  # type: ignore[attr-defined]
    return ccd


def put_master_requests(data: Union[bytes, memoryview], detector: str, kind: str,
                        configuration: Optional[Mapping[str, str]],
                        attributes: Optional[Mapping[str, str]], obs_time: Any
                        ) -> Iterator[store_pb2.PutMasterRequest]:
    """PutMaster's stream: the header with size and sha256, then ≤ 1 MiB chunks."""
    view = memoryview(data).cast("B")
    h = store_pb2.PutMasterHeader(detector=detector, kind=kind,
                                  configuration=dict(configuration or {}),
                                  attributes={k: str(v) for k, v in (attributes or {}).items()},
                                  total_bytes=view.nbytes,
                                  sha256=hashlib.sha256(view).hexdigest())
    if obs_time is not None:
        _convert.set_timestamp(h.obs_time, obs_time)
    yield store_pb2.PutMasterRequest(header=h)
    for off in range(0, view.nbytes, _wire.MAX_CHUNK_BYTES):
        yield store_pb2.PutMasterRequest(chunk=bytes(view[off:off + _wire.MAX_CHUNK_BYTES]))


def master_bytes(master: Any) -> bytes:
    """FITS bytes of put_master's input: a path, bytes, or a CCDData (written as FITS)."""
    import io
    from astropy.nddata import CCDData
    if isinstance(master, (bytes, bytearray, memoryview)):
        return bytes(master)
    if isinstance(master, (str, os.PathLike)):
        try:
            with open(master, "rb") as f:
                return f.read()
        except OSError as e:
            raise _errors.NotFound(f"cannot read {os.fspath(master)}: {e.strerror}") from None
    if isinstance(master, CCDData):
        buf = io.BytesIO()
        hdul = master.to_hdu(hdu_mask="MASK", hdu_uncertainty="UNCERT")
        for hdu in hdul:
            for key in ("CHECKSUM", "DATASUM"):
                hdu.header.remove(key, ignore_missing=True, remove_all=True)
        hdul.writeto(buf, checksum=True)
        return buf.getvalue()
    raise _errors.InvalidArgument(
        f"put_master takes a FITS path, FITS bytes or a CCDData, not {type(master).__name__}")


def certify_request(detector: str, kind: str, version: int, begin: Any, end: Any,
                    configuration: Optional[Mapping[str, str]], replace: bool,
                    reason: str) -> Any:
    r = store_pb2.CertifyRequest(detector=detector, kind=kind, version=int(version),
                                 configuration=dict(configuration or {}), replace=replace,
                                 reason=reason)
    _convert.set_timestamp(r.begin, begin)
    if end is not None:
        _convert.set_timestamp(r.end, end)
    return r


def decertify_request(detector: str, kind: str, version: int, begin: Any, end: Any,
                      configuration: Optional[Mapping[str, str]], reason: str) -> Any:
    r = store_pb2.DecertifyRequest(detector=detector, kind=kind, version=int(version),
                                   configuration=dict(configuration or {}), reason=reason)
    if begin is not None:
        _convert.set_timestamp(r.begin, begin)
    if end is not None:
        _convert.set_timestamp(r.end, end)
    return r


def select_request(detector: str, header: Any, policy: str, pins: Optional[Mapping[str, Any]],
                   max_age: Optional[float], kinds: Optional[Sequence[str]],
                   recipe: Optional[Mapping[str, Any]], dark_policy: Optional[str],
                   noise: Optional[Mapping[str, Optional[bool]]] = None) -> Any:
    if isinstance(header, (str, os.PathLike)):
        from astropy.io import fits
        try:
            with fits.open(header, memmap=False) as hdul:
                header = next(h for h in hdul if h.is_image and h.data is not None).header
        except (OSError, StopIteration) as e:
            raise _errors.InvalidArgument(f"cannot read a header from {header}: {e}") from None
    elif hasattr(header, "meta") and hasattr(header, "data"):  # CCDData
        header = header.meta
    r = store_pb2.SelectRequest(detector=detector, kinds=list(kinds or []))
    r.cards.extend(_convert.header_to_cards(header))
    r.selection.CopyFrom(_calibrate.selection_options(policy, pins, max_age))
    r.recipe.CopyFrom(_calibrate.recipe_overrides(recipe, dark_policy, noise))
    return r


# --- build ------------------------------------------------------------------------------

@dataclasses.dataclass
class Stored:
    """A stored master version used as an input of `build`."""
    kind: str
    version: int
    detector: str = ""
    configuration: Optional[Dict[str, str]] = None


_METHODS = {"median": "median", "average": "mean", "mean": "mean", "sum": "sum"}
_CLIP_FUNCS = {"median": "median", "mean": "mean", "average": "mean"}
_DEV_FUNCS = {"std": "std", "mad_std": "mad_std"}


def _func_name(value: Any, choices: Mapping[str, str], what: str) -> str:
    """A ccdproc-style function argument (a name or a numpy/astropy function) as calibd's name."""
    name = value if isinstance(value, str) else getattr(value, "__name__", str(value))
    name = {"nanmedian": "median", "nanmean": "mean", "nanstd": "std"}.get(name, name)
    try:
        return choices[name]
    except KeyError:
        raise _errors.InvalidArgument(
            f"{what}={value!r}: give one of {', '.join(sorted(set(choices)))}") from None


def combine_options(method: str = "median", sigma_clip: bool = False,
                    sigma_clip_low_thresh: float = 3.0, sigma_clip_high_thresh: float = 3.0,
                    sigma_clip_func: Any = "median", sigma_clip_dev_func: Any = "std",
                    maxiters: Optional[int] = None, clip_extrema: bool = False, nlow: int = 1,
                    nhigh: int = 1, minmax_clip: bool = False,
                    minmax_clip_min: Optional[float] = None,
                    minmax_clip_max: Optional[float] = None, scale: Any = None,
                    scale_section: Optional[str] = None, weights: Optional[Sequence[float]] = None,
                    variance: Optional[str] = None) -> builder_pb2.CombineOptions:
    """``CombineOptions`` from ccdproc.combine's argument names.

    As in ccdproc, clipping is off unless ``sigma_clip``/``clip_extrema``/``minmax_clip`` is
    set. ``scale`` is "median", "mean", "exposure", None, or a sequence of per-input factors.
    """
    co = builder_pb2.CombineOptions(method=_func_name(method, _METHODS, "method"))
    if sigma_clip:
        sc = co.sigma_clip
        sc.enabled = True
        sc.low = float(sigma_clip_low_thresh)
        sc.high = float(sigma_clip_high_thresh)
        sc.center = _func_name(sigma_clip_func, _CLIP_FUNCS, "sigma_clip_func")
        sc.spread = _func_name(sigma_clip_dev_func, _DEV_FUNCS, "sigma_clip_dev_func")
        if maxiters is not None:
            sc.max_iters = int(maxiters)
    else:
        co.sigma_clip.enabled = False
    if clip_extrema:
        co.nlow, co.nhigh = int(nlow), int(nhigh)
    if minmax_clip:
        if minmax_clip_min is not None:
            co.min_value = float(minmax_clip_min)
        if minmax_clip_max is not None:
            co.max_value = float(minmax_clip_max)
    if scale is not None:
        if isinstance(scale, str):
            if scale not in ("none", "median", "mean", "exposure"):
                raise _errors.InvalidArgument(
                    f"scale={scale!r}: give 'median', 'mean', 'exposure' or per-input factors")
            co.scale = scale
        elif callable(scale):
            raise _errors.InvalidArgument(
                "scale: a function cannot run on the server; give 'median', 'mean', "
                "'exposure' or the per-input factors")
        else:
            co.scale = "given"
            co.scale_factors.extend(float(s) for s in scale)
    if scale_section:
        co.scale_section = scale_section
    if weights is not None:
        co.weights.extend(float(w) for w in weights)
    if variance is not None:
        co.variance = variance
    return co


def build_options(detector: str, kind: str, combine: builder_pb2.CombineOptions,
                  preprocess: Optional[Mapping[str, Any]], policy: str,
                  pins: Optional[Mapping[str, Any]], configuration: Optional[Mapping[str, str]],
                  attributes: Optional[Mapping[str, str]], certify_from: Any, certify_until: Any,
                  replace: bool, noise_options: Optional[Mapping[str, Any]] = None
                  ) -> builder_pb2.BuildMasterRequest:
    o = builder_pb2.BuildOptions(detector=detector, kind=kind,
                                 configuration=dict(configuration or {}),
                                 attributes={k: str(v) for k, v in (attributes or {}).items()},
                                 certify_replace=replace)
    o.combine.CopyFrom(combine)
    if preprocess:
        o.preprocess.CopyFrom(_calibrate.recipe_overrides(preprocess))
    o.selection.CopyFrom(_calibrate.selection_options(policy, pins))
    if certify_from is not None:
        _convert.set_timestamp(o.certify_begin, certify_from)
    if certify_until is not None:
        if certify_from is None:
            raise _errors.InvalidArgument("certify_until needs certify_from")
        _convert.set_timestamp(o.certify_end, certify_until)
    _noise.set_noise_options(o, kind, noise_options or {})
    return builder_pb2.BuildMasterRequest(options=o)


def build_inputs(detector: str, frames: Any) -> List[Tuple[Optional[builder_pb2.BuildMasterRequest], Any]]:
    """Every input of a build, loaded before anything is sent (a build is all or nothing):
    [(request, pixels or None)]."""
    out = []
    tmpl = types_pb2.FrameHeader(detector=detector)
    for i, f in enumerate(_calibrate.as_iterable(frames)):
        if isinstance(f, (Stored, MasterVersion)):
            ref = builder_pb2.StoredFrameRef(detector=f.detector or detector, kind=f.kind,
                                             version=f.version,
                                             configuration=dict(f.configuration or {}))
            out.append((builder_pb2.BuildMasterRequest(stored=ref), None))
            continue
        fid, data, header = _convert.load_frame(f, i)
        pixels = _convert.little_endian_pixels(data)
        fh = _calibrate.frame_header(tmpl, fid, pixels, header)
        out.append((builder_pb2.BuildMasterRequest(frame=fh), pixels))
    if not out:
        raise _errors.InvalidArgument("build needs at least one input frame")
    return out


def build_requests(options: builder_pb2.BuildMasterRequest, inputs) -> Iterator[Any]:
    yield options
    for req, pixels in inputs:
        yield req
        if pixels is not None:
            yield from _calibrate.pixel_chunks(pixels, _wire.build_chunk)
