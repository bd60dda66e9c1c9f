"""Noise products and synthesized darks in the client: the option names of the noise kinds'
builds, stored products as a dict of `CCDData` by EXTNAME, and the SynthesizeDark request.

A noise product (read_noise, gain, dark_current, bad_pixels, noise_model) is one FITS file:
an empty primary HDU with the product's cards (PRODUCT = kind, NMAPS, RDNOISE, GAIN, ...), one
float32 image per map (EXTNAME = its name, BUNIT its unit; a map X may have its standard error
in X_ERR) and a DQ image (core/noise/noise_product.h). `NoiseProduct` is that file as

    product = client.get_master("roman/excam", "noise_model", version=1)
    product.kind                    # "noise_model"
    product.header["DCMEAN"]        # the product's cards
    product["DARK_CURRENT"]         # CCDData [electron / s], uncertainty = DARK_CURRENT_ERR,
                                    #   mask = DQ != 0
    product.dq                      # uint16 DQ bits

Thread safety: values and pure functions.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from . import _errors

# The kinds BuildMaster builds with noise::Build* instead of a combine (server/noise_build.cc).
NOISE_KINDS = ("read_noise", "gain", "dark_current", "bad_pixels", "noise_model",
               "gain_normalisation")

# The option names of the noise kinds (NoiseBuildOptions, core/noise/noise.h) and which kinds
# use them; anything else passed to `build` for a noise kind is an error, not ignored.
NOISE_OPTIONS: Dict[str, Sequence[str]] = {
    "min_frames": ("read_noise",),
    "hot_sigma": ("dark_current",),
    "hot_min_rate": ("dark_current",),
    "dead_fraction": ("bad_pixels",),
    "box": ("bad_pixels",),
    "noisy_sigma": ("bad_pixels",),
    "sections": ("gain",),
    "level_sizes": ("gain",),
    "saturation_fraction": ("gain",),
    "max_saturated_fraction": ("gain",),
    "nonlinearity_sigma": ("gain",),
    "prescan_section": ("noise_model",),
    "unweighted": ("noise_model",),
    "setting_key": ("gain_normalisation",),
    "section": ("gain_normalisation",),
    "reference": ("gain_normalisation",),
}

_LAYOUT = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "XTENSION", "PCOUNT",
           "GCOUNT", "BZERO", "BSCALE", "CHECKSUM", "DATASUM", "BUNIT", "EXTNAME"}


def is_noise_kind(kind: str) -> bool:
    return kind in NOISE_KINDS


def set_noise_options(options: Any, kind: str, given: Mapping[str, Any]) -> None:
    """Fills ``BuildOptions.noise`` (a ``NoiseBuildOptions``) from `build`'s keyword arguments.

    Raises
    ------
    InvalidArgument
        An option of another kind, or an unknown one (naming the kind's options).
    Unimplemented
        The client's API (its generated stubs) has no noise options yet.
    """
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return
    if not is_noise_kind(kind):
        raise _errors.InvalidArgument(
            f"{', '.join(sorted(given))}: options of the noise kinds, not of {kind!r}")
    for key in given:
        kinds = NOISE_OPTIONS.get(key)
        if kinds is None or kind not in kinds:
            mine = sorted(k for k, ks in NOISE_OPTIONS.items() if kind in ks)
            raise _errors.InvalidArgument(
                f"{key!r} is not an option of {kind!r}; its options: "
                f"{', '.join(mine) if mine else 'none'}")
    if "noise" not in options.DESCRIPTOR.fields_by_name:
        raise _errors.Unimplemented(
            "this calibd API has no noise build options (BuildOptions.noise); build with the "
            "defaults or update the client and server")
    n = options.noise
    for key, value in given.items():
        field = n.DESCRIPTOR.fields_by_name[key]
        if field.label == field.LABEL_REPEATED:
            if isinstance(value, (str, bytes)):
                value = [value]
            getattr(n, key).extend(int(v) if field.type == field.TYPE_INT32 else str(v)
                                   for v in value)
        elif field.type == field.TYPE_BOOL:
            setattr(n, key, bool(value))
        elif field.type == field.TYPE_INT32:
            if int(value) != value:
                raise _errors.InvalidArgument(f"{key}={value!r}: give a whole number")
            setattr(n, key, int(value))
        elif field.type == field.TYPE_DOUBLE:
            setattr(n, key, float(value))
        else:
            setattr(n, key, str(value))


class NoiseProduct(dict):
    """A stored noise product: ``{EXTNAME: CCDData}`` for every map of the file, plus the DQ
    plane ("DQ", also ``.dq``).

    Each map's `CCDData` has the map's unit (BUNIT), ``mask`` = DQ != 0, its own header as
    ``meta``, and, when the product has the map ``<name>_ERR``, that map as its
    `~astropy.nddata.StdDevUncertainty` (the ``_ERR`` maps are entries of their own too).

    Attributes
    ----------
    kind : str
        The product's kind (its PRODUCT card): "read_noise", "noise_model", ...
    header : astropy.io.fits.Header
        The product's own cards (RDNOISE, GAIN, DCMEAN, NHOT, ...; the primary HDU's).
    dq : numpy.ndarray
        The data-quality bits (uint16).
    master : MasterVersion
        The stored version (when downloaded with `Client.get_master`).
    """

    kind: str = ""
    header: fits.Header
    dq: Optional[np.ndarray] = None
    master: Any = None

    @property
    def maps(self) -> list:
        """The names of the float maps, in file order (DQ excluded)."""
        return [k for k in self if k != "DQ"]

    def __repr__(self) -> str:
        return f"<NoiseProduct {self.kind}: {', '.join(self)}>"


def is_noise_product(hdul: fits.HDUList) -> bool:
    """A file in the noise-product layout: a PRODUCT card on an empty primary HDU."""
    return len(hdul) > 1 and "PRODUCT" in hdul[0].header and hdul[0].data is None


def _clean(header: fits.Header) -> fits.Header:
    h = header.copy()
    for key in _LAYOUT:
        h.remove(key, ignore_missing=True, remove_all=True)
    return h


def _unit(text: str) -> u.UnitBase:
    if not text:
        return u.dimensionless_unscaled
    try:
        return u.Unit(text)
    except ValueError:
        return u.dimensionless_unscaled


def noise_product(hdul: fits.HDUList, master: Any = None) -> NoiseProduct:
    """The `NoiseProduct` of an open file in the noise-product layout."""
    p = NoiseProduct()
    p.header = _clean(hdul[0].header)
    p.kind = str(hdul[0].header.get("PRODUCT", ""))
    p.master = master
    dq = None
    arrays = {}
    headers = {}
    for h in hdul[1:]:
        if not h.is_image or h.data is None:
            continue
        name = h.name.upper()
        if name == "DQ":
            dq = np.asarray(h.data, dtype=np.uint16)
        else:
            arrays[name] = np.asarray(h.data)
            headers[name] = h.header
    if dq is None:
        shape = next(iter(arrays.values())).shape if arrays else (0, 0)
        dq = np.zeros(shape, dtype=np.uint16)
    mask = dq != 0
    for name, a in arrays.items():
        err = arrays.get(f"{name}_ERR")
        unc = StdDevUncertainty(err, copy=False) if err is not None else None
        p[name] = CCDData(a, unit=_unit(headers[name].get("BUNIT", "")), uncertainty=unc,
                          mask=mask, meta=_clean(headers[name]), copy=False)
    p["DQ"] = CCDData(dq, unit=u.dimensionless_unscaled, meta=fits.Header(), copy=False)
    p.dq = dq
    return p


# --- synthesized darks ---------------------------------------------------------------------

SYNTHESIZE_DARK = "/calibd.v1.Noise/SynthesizeDark"


def noise_pb2() -> Any:
    """The generated Noise API module; `Unimplemented` when this client was built without it."""
    try:
        from ._proto import noise_pb2 as m
    except ImportError:
        raise _errors.Unimplemented(
            "this calibd client was built without the Noise API (proto/calibd/v1/noise.proto); "
            "update it to synthesize darks") from None
    return m


def synth_dark_request(detector: str, exptime: float, em_gain: float = 1.0,
                       temperature: Optional[float] = None,
                       configuration: Optional[Mapping[str, str]] = None,
                       version: Optional[int] = None, at: Any = None,
                       planes: Optional[Sequence[str]] = None) -> Any:
    """A ``SynthesizeDarkRequest`` (planes by name: "data", "variance", "dq")."""
    from . import _calibrate, _convert
    m = noise_pb2()
    r = m.SynthesizeDarkRequest(detector=detector, exptime=float(exptime),
                                em_gain=float(em_gain),
                                configuration=dict(configuration or {}))
    if temperature is not None:
        r.temperature = float(temperature)
    if version is not None and at is not None:
        raise _errors.InvalidArgument("give version= or at=, not both")
    if version is not None:
        r.version = int(version)
    elif at is not None:
        _convert.set_timestamp(r.at, at)
    if planes is not None:
        if isinstance(planes, str):
            planes = [p.strip() for p in planes.split(",") if p.strip()]
        r.planes.extend(_calibrate._choice("planes", p, _calibrate._PLANES) for p in planes)
    return r


def decode_synth_dark_response(raw: bytes) -> Any:
    from . import _wire
    return _wire.decode_response(raw, noise_pb2().SynthesizeDarkHeader)


class SynthDarkAssembler:
    """Turns a SynthesizeDark response stream (a header, then plane chunks as Calibrate's) into
    a `CalibratedFrame` in e⁻ with ``.model`` (the `MasterVersion` of the product used)."""

    def __init__(self) -> None:
        from . import _calibrate
        self._assembler = _calibrate.ResultAssembler(window=1)
        self._model: Any = None
        self.result: Any = None

    def add(self, message: Any) -> None:
        from ._types import MasterVersion
        if self.result is not None:
            raise _errors.Internal("protocol error from the server: a message after the dark")
        if hasattr(message, "result") and hasattr(message, "model"):  # SynthesizeDarkHeader
            self._model = MasterVersion.from_proto(message.model) if message.HasField(
                "model") else None
            message = message.result
        out = self._assembler.add(message, 0)
        if out is None:
            return
        if isinstance(out, _errors.FrameError):
            raise out.error
        out.model = self._model
        self.result = out

    def finish(self) -> Any:
        if self.result is None:
            raise _errors.Unavailable("the stream ended before the synthesized dark was complete")
        return self.result
