"""`calibd.Client`: the blocking client of a calibd server.

    import calibd
    with calibd.Client("127.0.0.1:50051", token=None) as client:
        client.put_detector("night/SPEC.json")
        client.build("bias", glob.glob("night/bias/*.fits"), detector="demo/ccd0",
                     certify_from="2026-03-01")
        for result in client.calibrate(glob.glob("night/light/*.fits"), detector="demo/ccd0"):
            if isinstance(result, calibd.FrameError):
                print(result)
            else:
                result.write(result.frame_id.replace(".fits", "_red.fits"))

Thread safety: a Client may be used from several threads at once (each call is independent);
one `calibrate` generator belongs to the thread iterating it.
"""
from __future__ import annotations

import collections
import threading
from typing import (Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Union)

import grpc

from . import _calibrate, _convert, _errors, _noise, _requests, _wire
from ._proto import (builder_pb2, health_pb2, health_pb2_grpc, store_pb2,
                     store_pb2_grpc)
from ._types import (BuildResult, CalibratedFrame, Certification, DqBit, History, HistoryEvent,
                     MasterVersion, PutResult, Selection)

_CALIBRATE = "/calibd.v1.Calibrator/Calibrate"
_BUILD_MASTER = "/calibd.v1.Builder/BuildMaster"
Result = Union[CalibratedFrame, _errors.FrameError]


class _Pipeline:
    """The state a Calibrate stream's writer (gRPC's request thread) and reader share."""

    def __init__(self, window: int) -> None:
        self.cv = threading.Condition()
        self.items: Deque[_calibrate.Item] = collections.deque()
        self.window = max(1, int(window))
        self.in_flight = 0
        self.writer_done = False
        self.stop = False

    def acquire(self) -> bool:
        with self.cv:
            while self.in_flight >= self.window and not self.stop:
                self.cv.wait()
            if self.stop:
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self.cv:
            self.in_flight -= 1
            self.cv.notify_all()

    def push(self, item: _calibrate.Item) -> None:
        with self.cv:
            self.items.append(item)
            self.cv.notify_all()

    def finish_writing(self) -> None:
        with self.cv:
            self.writer_done = True
            self.cv.notify_all()

    def halt(self) -> None:
        with self.cv:
            self.stop = True
            self.cv.notify_all()

    def next_item(self, call: Any) -> Optional[_calibrate.Item]:
        """The next item in order; None when the writer is done (or the call ended)."""
        with self.cv:
            while not self.items and not self.writer_done:
                if call.done():
                    return None
                self.cv.wait(0.05)
            return self.items.popleft() if self.items else None


class Client:
    """A connection to a calibd server.

    Parameters
    ----------
    address : str
        ``HOST:PORT`` of the server, e.g. ``"127.0.0.1:50051"``.
    token : str, optional
        Bearer token, sent as ``authorization: Bearer <token>`` (servers run with ``--tokens``).
    tls : bool, dict or TLS, optional
        None/False: plaintext. True: TLS with the system roots. ``TLS(ca=..., cert=...,
        key=...)`` (or a dict of those): a CA bundle, plus a client certificate for mutual TLS.
    timeout : float, optional
        Deadline of unary calls in seconds (default 60); None = none.
    stream_timeout : float, optional
        Deadline of streaming calls (calibrate, build, put/get master); default none.

    Notes
    -----
    Use as a context manager (``with calibd.Client(...) as c:``) or call `close`.
    """

    def __init__(self, address: str, token: Optional[str] = None,
                 tls: Union[None, bool, "_requests.TLS", Mapping[str, str]] = None,
                 timeout: Optional[float] = _requests.DEFAULT_TIMEOUT,
                 stream_timeout: Optional[float] = None) -> None:
        if not address:
            raise _errors.InvalidArgument("no server address; give HOST:PORT")
        creds, options = _requests.channel_args(tls)
        self.address = address
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self._metadata = _requests.metadata(token)
        self._channel = (grpc.secure_channel(address, creds, options) if creds is not None
                         else grpc.insecure_channel(address, options))
        self._store = store_pb2_grpc.StoreStub(self._channel)
        # Streams with pixel chunks serialize them by hand (_wire): one copy of the pixels.
        self._build_master = self._channel.stream_unary(
            _BUILD_MASTER, request_serializer=_wire.serializer,
            response_deserializer=builder_pb2.BuildMasterResponse.FromString)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._calibrate = self._channel.stream_stream(
            _CALIBRATE, request_serializer=_wire.serializer,
            response_deserializer=_wire.decode_calibrate_response)
        self._synthesize_dark: Optional[Callable[..., Any]] = None  # made on first use

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel (calls in progress are cancelled)."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"calibd.Client({self.address!r})"

    # -- helpers -----------------------------------------------------------------------------

    def _unary(self, method: Callable[..., Any], request: Any, what: str,
               timeout: Optional[float] = None) -> Any:
        try:
            return method(request, timeout=timeout if timeout is not None else self.timeout,
                          metadata=self._metadata)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, what) from None

    def _stream_timeout(self, timeout: Optional[float]) -> Optional[float]:
        return timeout if timeout is not None else self.stream_timeout

    # -- health, detectors, DQ bits -----------------------------------------------------------

    def health(self, service: str = "") -> str:
        """The server's health: "SERVING", "NOT_SERVING", ... (grpc.health.v1)."""
        r = self._unary(self._health.Check, health_pb2.HealthCheckRequest(service=service),
                        "health")
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def put_detector(self, spec: Any) -> Dict[str, Any]:
        """Stores a detector spec (a SPEC.json path, its dict, or a DetectorSpec) as a new version.

        Returns
        -------
        dict
            The stored spec, with its ``version``.
        """
        req = store_pb2.PutDetectorRequest(spec=_requests.detector_spec(spec))
        r = self._unary(self._store.PutDetector, req, f"put detector {req.spec.name}")
        return _requests.detector_dict(r.spec)

    def get_detector(self, name: str, version: int = 0) -> Dict[str, Any]:
        """The latest (or a given) version of a detector spec; unknown → `NotFound`."""
        r = self._unary(self._store.GetDetector,
                        store_pb2.GetDetectorRequest(name=name, version=version),
                        f"get detector {name}")
        return _requests.detector_dict(r)

    def detectors(self, page_size: Optional[int] = None) -> List[Dict[str, Any]]:
        """The latest version of every detector spec (all pages)."""
        out: List[Dict[str, Any]] = []
        for r in self._pages(self._store.ListDetectors, store_pb2.ListDetectorsRequest,
                             page_size, "list detectors"):
            out.extend(_requests.detector_dict(d) for d in r.detectors)
        return out

    def dq_bits(self, detector: str = "") -> List[DqBit]:
        """The DQ bits: the core registry, plus ``detector``'s own bits."""
        r = self._unary(self._store.GetDqBits, store_pb2.GetDqBitsRequest(detector=detector),
                        "get DQ bits")
        return _requests.dq_bits(r)

    def _pages(self, method: Callable[..., Any], request_type: Any, page_size: Optional[int],
               what: str, **fields: Any) -> Iterator[Any]:
        token = ""
        while True:
            req = request_type(**fields)
            _requests.set_page(req, page_size, token)
            resp = self._unary(method, req, what)
            yield resp
            token = _requests.next_token(resp)
            if not token or not _requests.has_paging(request_type):
                return

    # -- masters ---------------------------------------------------------------------------

    def list_masters(self, detector: Optional[str] = None, kind: Optional[str] = None,
                     page_size: Optional[int] = None) -> List[MasterVersion]:
        """The stored versions, filtered by detector and/or kind, fetched page by page.

        Parameters
        ----------
        detector, kind : str, optional
            Filters; None = all.
        page_size : int, optional
            Versions per request (the server's default when None).
        """
        return list(self.iter_masters(detector, kind, page_size))

    def iter_masters(self, detector: Optional[str] = None, kind: Optional[str] = None,
                     page_size: Optional[int] = None) -> Iterator[MasterVersion]:
        """Like `list_masters`, one page at a time as the iterator is consumed."""
        for r in self._pages(self._store.ListMasters, store_pb2.ListMastersRequest, page_size,
                             "list masters", detector=detector or "", kind=kind or ""):
            for v in r.versions:
                yield MasterVersion.from_proto(v)

    def history(self, detector: str, kind: str,
                configuration: Optional[Mapping[str, str]] = None,
                page_size: Optional[int] = None) -> History:
        """Every version of the matching series and the audit log about them, oldest first."""
        versions: List[MasterVersion] = []
        events: List[HistoryEvent] = []
        for r in self._pages(self._store.History, store_pb2.HistoryRequest, page_size,
                             f"history {detector} {kind}", detector=detector, kind=kind,
                             configuration=dict(configuration or {})):
            versions.extend(MasterVersion.from_proto(v) for v in r.versions)
            events.extend(HistoryEvent.from_proto(e) for e in r.events)
        return History(versions, events)

    def get_master(self, detector: str, kind: str, version: Optional[int] = None, at: Any = None,
                   configuration: Optional[Mapping[str, str]] = None,
                   timeout: Optional[float] = None):
        """Downloads a master as `~astropy.nddata.CCDData` (sha256 checked).

        Parameters
        ----------
        version : int, optional
            The version number; or
        at : datetime, str or astropy Time, optional
            the version certified at this time.

        Returns
        -------
        CCDData
            With ``.master`` (its `MasterVersion`) and ``.dq`` (the DQ plane, or None).

        Raises
        ------
        DataLoss
            The bytes did not hash to the stored sha256.
        """
        req = _requests.get_master_request(detector, kind, version, at, configuration)
        what = f"get {detector} {kind}"
        dl = _requests.MasterDownload()
        try:
            for resp in self._store.GetMaster(req, timeout=self._stream_timeout(timeout),
                                              metadata=self._metadata):
                dl.add(resp)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, what) from None
        mv, data = dl.finish()
        return _requests.master_ccddata(data, mv)

    def put_master(self, master: Any, detector: str, kind: str,
                   configuration: Optional[Mapping[str, str]] = None,
                   attributes: Optional[Mapping[str, str]] = None, obs_time: Any = None,
                   timeout: Optional[float] = None) -> PutResult:
        """Uploads a master (a FITS path, FITS bytes or a CCDData) with its sha256.

        An identical re-upload returns the existing version (``already_existed``).
        """
        data = _requests.master_bytes(master)
        reqs = _requests.put_master_requests(data, detector, kind, configuration, attributes,
                                             obs_time)
        try:
            r = self._store.PutMaster(reqs, timeout=self._stream_timeout(timeout),
                                      metadata=self._metadata)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, f"put {detector} {kind}") from None
        return PutResult(MasterVersion.from_proto(r.version), r.already_existed)

    def certify(self, detector: str, kind: str, version: int, begin: Any, end: Any = None,
                configuration: Optional[Mapping[str, str]] = None, replace: bool = False,
                reason: str = "") -> Certification:
        """Certifies a version for frames taken in ``[begin, end)`` (end None = open-ended).

        Raises
        ------
        AlreadyExists
            It overlaps a certification of the series (pass ``replace=True``).
        """
        req = _requests.certify_request(detector, kind, version, begin, end, configuration,
                                        replace, reason)
        r = self._unary(self._store.Certify, req, f"certify {detector} {kind} v{version}")
        return Certification.from_proto(r.certification)

    def decertify(self, detector: str, kind: str, version: int, begin: Any = None,
                  end: Any = None, configuration: Optional[Mapping[str, str]] = None,
                  reason: str = "") -> MasterVersion:
        """Removes a version's certifications (or only ``[begin, end)`` of them)."""
        req = _requests.decertify_request(detector, kind, version, begin, end, configuration,
                                          reason)
        r = self._unary(self._store.Decertify, req, f"decertify {detector} {kind} v{version}")
        return MasterVersion.from_proto(r.version)

    def select(self, header: Any, detector: str, policy: str = "strict",
               pins: Optional[Mapping[str, Any]] = None, max_age: Optional[float] = None,
               kinds: Optional[Sequence[str]] = None, recipe: Optional[Mapping[str, Any]] = None,
               dark_policy: Optional[str] = None, **noise: Optional[bool]) -> Selection:
        """Which masters a frame (a header, CCDData or FITS path) would get, and why."""
        req = _requests.select_request(detector, header, policy, pins, max_age, kinds, recipe,
                                       dark_policy, noise)
        return Selection.from_proto(self._unary(self._store.Select, req, f"select {detector}"))

    # -- build -----------------------------------------------------------------------------

    def build(self, kind: str, frames: Any, detector: str, method: str = "median",
              sigma_clip: bool = False, sigma_clip_low_thresh: float = 3.0,
              sigma_clip_high_thresh: float = 3.0, sigma_clip_func: Any = "median",
              sigma_clip_dev_func: Any = "std", maxiters: Optional[int] = None,
              clip_extrema: bool = False, nlow: int = 1, nhigh: int = 1,
              minmax_clip: bool = False, minmax_clip_min: Optional[float] = None,
              minmax_clip_max: Optional[float] = None, scale: Any = None,
              scale_section: Optional[str] = None, weights: Optional[Sequence[float]] = None,
              variance: Optional[str] = None, preprocess: Optional[Mapping[str, Any]] = None,
              policy: str = "strict", pins: Optional[Mapping[str, Any]] = None,
              configuration: Optional[Mapping[str, str]] = None,
              attributes: Optional[Mapping[str, str]] = None, certify_from: Any = None,
              certify_until: Any = None, replace: bool = False,
              timeout: Optional[float] = None, **noise_options: Any) -> BuildResult:
        """Combines raw frames (paths, CCDData, (array, header) pairs) and/or stored versions
        (`Stored`, `MasterVersion`) into a new master version, optionally certified.

        The combine options carry ccdproc.combine's names: ``method`` ("median", "average",
        "sum"), ``sigma_clip`` with ``sigma_clip_low_thresh``/``_high_thresh``/``_func``/
        ``_dev_func``, ``clip_extrema`` with ``nlow``/``nhigh``, ``minmax_clip`` with
        ``minmax_clip_min``/``_max``, ``scale`` and ``weights``. As in ccdproc, nothing is
        clipped unless asked. Each input is pre-processed by the kind's default recipe
        (``preprocess`` overrides it, e.g. ``{"dark": False}``).

        Every input is read before anything is sent: a build is all or nothing.

        The noise kinds build a detector-characterisation product instead of a combine
        (`get_master` returns it as a `NoiseProduct`), each from its own inputs, pre-processed
        as a bias (read_noise, gain) or a dark (dark_current, noise_model) is, with its own
        keyword options (core/noise/noise.h documents each; unset = the default):

        ``"read_noise"``
            biases; ``min_frames`` (2).
        ``"gain"``
            flat pairs of increasing level plus >= 2 biases (IMAGETYP bias/zero);
            ``sections`` (one FITS section per amplifier), ``level_sizes`` (frames per level,
            in input order; default pairs), ``saturation_fraction`` (0.9),
            ``max_saturated_fraction`` (0.001), ``nonlinearity_sigma`` (5).
        ``"dark_current"``
            darks of >= 3 exposure times; ``hot_sigma`` (5), ``hot_min_rate`` (0 e⁻/s).
        ``"noise_model"``
            darks of >= 4 (EM gain, exposure time) settings; ``prescan_section``,
            ``unweighted`` (False).
        ``"bad_pixels"``
            stored dark_current / read_noise products (`Stored`) and/or one master flat;
            ``dead_fraction`` (0.5), ``box`` (15), ``noisy_sigma`` (5).
        ``"gain_normalisation"``
            flats of one illumination at several gain settings; ``setting_key``,
            ``section``, ``reference`` (a table product: ``.header`` holds its rows).

        An option of another kind is `InvalidArgument`.
        """
        combine = _requests.combine_options(
            method, sigma_clip, sigma_clip_low_thresh, sigma_clip_high_thresh, sigma_clip_func,
            sigma_clip_dev_func, maxiters, clip_extrema, nlow, nhigh, minmax_clip,
            minmax_clip_min, minmax_clip_max, scale, scale_section, weights, variance)
        options = _requests.build_options(detector, kind, combine, preprocess, policy, pins,
                                          configuration, attributes, certify_from,
                                          certify_until, replace, noise_options)
        inputs = _requests.build_inputs(detector, frames)
        try:
            r = self._build_master(_requests.build_requests(options, inputs),
                                          timeout=self._stream_timeout(timeout),
                                          metadata=self._metadata)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, f"build {detector} {kind}") from None
        return BuildResult.from_proto(r)

    # -- synthesized darks -------------------------------------------------------------------

    def synthesize_dark(self, detector: str, exptime: float, em_gain: float = 1.0,
                        temperature: Optional[float] = None,
                        configuration: Optional[Mapping[str, str]] = None,
                        version: Optional[int] = None, at: Any = None,
                        planes: Optional[Sequence[str]] = None,
                        timeout: Optional[float] = None) -> CalibratedFrame:
        """A master dark for any exposure time and EM gain, synthesized by the server from the
        detector's noise_model product (else its dark_current product).

        From a noise_model: data = F/g + t·D + C, i.e. (F + g·t·D + g·C)/g — the dark of a frame
        divided by its EM gain g (corgidrp's build_synthesized_dark) — with variance aᵀΣa,
        a = (1/g, t, 1) and Σ each pixel's covariance of (F, D, C); from a dark_current
        product: t·D (g ignored).

        Parameters
        ----------
        detector : str
            "instrument/detector".
        exptime : float
            Exposure time t [s], > 0.
        em_gain : float
            EM gain g (1 for a conventional CCD).
        temperature : float, optional
            Detector temperature [°C]: D scaled by exp(c·(T − the model's TEMPMOD)) with the
            detector spec's dark temperature coefficient c.
        configuration : dict, optional
            The model's series (default: the only one).
        version : int, optional
            The model version; or
        at : datetime, str or astropy Time, optional
            the one certified at this time; neither = the one certified now, else the latest.
        planes : sequence of {"data", "variance", "dq"}, optional
            Default all three.

        Returns
        -------
        CalibratedFrame
            In electrons, with ``uncertainty`` (sqrt of the variance), ``mask``/``dq``,
            ``meta`` (IMAGETYP = 'dark', SYNTHDRK, SYNMODEL, SYNMODV, EXPTIME, EMGAIN, ...),
            ``provenance`` (the product used) and ``model`` (its `MasterVersion`).

        Raises
        ------
        NotFound
            Unknown detector, or it has neither a noise_model nor a dark_current product.
        InvalidArgument
            exptime <= 0, em_gain < 0, a bad plane name.
        FailedPrecondition
            ``temperature`` without a coefficient in the spec or a TEMPMOD in the model.
        Unimplemented
            The server (or this client's API) has no SynthesizeDark.
        """
        req = _noise.synth_dark_request(detector, exptime, em_gain, temperature, configuration,
                                        version, at, planes)
        if self._synthesize_dark is None:
            self._synthesize_dark = self._channel.unary_stream(
                _noise.SYNTHESIZE_DARK, request_serializer=type(req).SerializeToString,
                response_deserializer=_noise.decode_synth_dark_response)
        out = _noise.SynthDarkAssembler()
        try:
            for message in self._synthesize_dark(req, timeout=self._stream_timeout(timeout),
                                                 metadata=self._metadata):
                out.add(message)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, f"synthesize a dark for {detector}") from None
        return out.finish()

    # -- calibrate ---------------------------------------------------------------------------

    def calibrate(self, frames: Any, detector: Optional[str] = None, unit: str = "adu",
                  planes: Optional[Sequence[str]] = None, policy: str = "strict",
                  pins: Optional[Mapping[str, Any]] = None, max_age: Optional[float] = None,
                  dark_policy: Optional[str] = None, recipe: Optional[Mapping[str, Any]] = None,
                  read_noise_map: Optional[bool] = None, gain_product: Optional[bool] = None,
                  bad_pixels: Optional[bool] = None, window: int = _calibrate.DEFAULT_WINDOW,
                  timeout: Optional[float] = None, *, _assembler: Any = None
                  ) -> Iterator[Result]:
        """Calibrates frames over one Calibrate stream, yielding results in order as they arrive.

        Parameters
        ----------
        frames : iterable
            `~astropy.nddata.CCDData`, ``(ndarray, header)`` pairs (or ``(ndarray, header,
            frame_id)``), or FITS paths; a generator is read lazily (a camera's readout).
        detector : str, optional
            "instrument/detector"; default: each frame's DETECTOR keyword when it has that
            form (else the frame fails with INVALID_ARGUMENT).
        unit : {"adu", "electron"}
        planes : sequence of {"data", "variance", "dq"}, optional
            Planes to return (default all three; fewer = fewer bytes).
        policy : {"strict", "nearest"}
            How masters are selected; ``max_age`` [s] bounds how far the nearest version may be.
        pins : dict, optional
            ``{kind: version number or sha256}``: use exactly these masters.
        dark_policy : {"measured", "synthesized", "measured_else_synthesized"}, optional
            Where the dark comes from: a measured master dark; one synthesized for each
            frame's exposure time, EM gain and temperature from the detector's noise_model
            (else dark_current) product; or the measured one when selectable, else a
            synthesized one. Default: the detector spec's policy (else measured). The
            provenance says which (``used_as == "dark"``, ``kind`` "noise_model" for a
            synthesized one). The earlier values "scale" (default), "exact" (unscaled) and
            "skip" (no dark) set the dark's exposure scaling instead.
        read_noise_map, gain_product, bad_pixels : bool, optional
            The noise products: the per-pixel read noise of the variance, the measured gain
            (ELECTRON output and variance), the bad-pixel map OR-ed into DQ. None (default):
            used when one is selectable; True: required (none is a frame error under
            "strict"); False: not used.
        recipe : dict, optional
            Other ``RecipeOverrides`` fields, e.g. ``{"flat_norm": "clipped_mean"}``.
        window : int
            Frames in flight (sent, result not complete); sending and receiving overlap.
        timeout : float, optional
            Deadline of the whole stream (default the client's ``stream_timeout``).

        Yields
        ------
        CalibratedFrame or FrameError
            One per input, in input order. A frame that fails (on the server or locally)
            yields a `FrameError` with its code in its place; the stream goes on.

        Raises
        ------
        Error
            The stream as a whole failed (auth, deadline, lost connection); results received
            before were yielded. KeyboardInterrupt (or closing the generator) cancels the
            stream.
        """
        template = _calibrate.frame_template(detector, unit, planes, policy, pins, max_age,
                                             dark_policy, recipe, {"read_noise_map": read_noise_map,
                                             "gain_product": gain_product, "bad_pixels": bad_pixels})
        # _assembler: calibd.reduce's FileAssembler (results straight into file buffers).
        return self._calibrate_stream(_calibrate.as_iterable(frames), template, window,
                                      self._stream_timeout(timeout), _assembler)

    def _calibrate_stream(self, frames: Iterable[Any], template: Any, window: int,
                          timeout: Optional[float], assembler: Any = None) -> Iterator[Result]:
        pipe = _Pipeline(window)

        def requests() -> Iterator[Any]:
            index = 0
            try:
                it = iter(frames)
                while True:
                    if not pipe.acquire():
                        return
                    try:
                        frame = next(it)
                    except StopIteration:
                        pipe.release()
                        return
                    item = _calibrate.Item(index, _convert.frame_id(frame, index))
                    index += 1
                    try:
                        fid, header, pixels = _calibrate.prepare(template, frame, item.index)
                    except Exception as e:  # noqa: BLE001 - reported in the frame's place
                        item.error = e
                        pipe.release()
                        pipe.push(item)
                        continue
                    item.frame_id = fid
                    pipe.push(item)
                    yield header
                    yield from _calibrate.pixel_chunks(pixels)
            except BaseException as e:  # noqa: BLE001 - the caller's iterable failed
                pipe.push(_calibrate.Item(index, "", e, fatal=True))
            finally:
                pipe.finish_writing()

        call = self._calibrate(requests(), timeout=timeout, metadata=self._metadata)
        if assembler is None:
            assembler = _calibrate.ResultAssembler(window)
        try:
            while True:
                item = pipe.next_item(call)
                if item is None:
                    break
                if item.fatal:
                    call.cancel()
                    raise item.error  # type: ignore[misc]
                if item.error is not None:
                    yield _calibrate.local_error(item.error, item)
                    continue
                result = None
                while result is None:
                    try:
                        message = next(call)
                    except StopIteration:
                        raise _errors.Unavailable(
                            f"the stream ended before the result of {item.frame_id!r} came "
                            "back") from None
                    result = assembler.add(message, item.index)
                pipe.release()
                yield result
            # Drain: the final status (e.g. an error after the last result).
            for _ in call:
                pass
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, "calibrate stream") from None
        except BaseException:
            call.cancel()
            raise
        finally:
            pipe.halt()
