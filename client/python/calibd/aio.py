"""`calibd.aio.Client`: the calibd client on `grpc.aio`, for asyncio control systems.

The same methods as `calibd.Client`, as coroutines; `calibrate` is an async generator and takes
a plain or an async iterable (frames as they are read out)::

    async with calibd.aio.Client("127.0.0.1:50051") as client:
        async for result in client.calibrate(camera.frames(), detector="lfc/chip0"):
            if isinstance(result, calibd.FrameError):
                log.warning("%s", result)
            else:
                publish(result)

FITS files are read, and results assembled, in the event loop's default executor, so the loop
stays responsive while pixels move.

Thread safety: a Client belongs to one event loop; calls may run concurrently as tasks.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Union

import grpc
import grpc.aio

from . import _calibrate, _convert, _errors, _noise, _requests, _wire
from ._proto import builder_pb2, health_pb2, health_pb2_grpc, store_pb2, store_pb2_grpc
from ._types import (BuildResult, CalibratedFrame, Certification, DqBit, History, HistoryEvent,
                     MasterVersion, PutResult, Selection)
from .client import _BUILD_MASTER, _CALIBRATE

Result = Union[CalibratedFrame, _errors.FrameError]

__all__ = ["Client"]


async def _raise_if_failed(call: Any) -> None:
    """Raises the stream's final status as `calibd.Error` when it is not OK."""
    code = await call.code()
    if code != grpc.StatusCode.OK:
        request_id = None
        for key, value in (await call.trailing_metadata()) or ():
            if key == _errors.REQUEST_ID_KEY:
                request_id = value
        raise _errors.error_for(code, f"calibrate stream: {await call.details()}", request_id)


class Client:
    """An asyncio connection to a calibd server; arguments as `calibd.Client`."""

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
        self._channel = (grpc.aio.secure_channel(address, creds, options) if creds is not None
                         else grpc.aio.insecure_channel(address, options))
        self._store = store_pb2_grpc.StoreStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._build_master = self._channel.stream_unary(
            _BUILD_MASTER, request_serializer=_wire.serializer,
            response_deserializer=builder_pb2.BuildMasterResponse.FromString)
        self._calibrate = self._channel.stream_stream(
            _CALIBRATE, request_serializer=_wire.serializer,
            response_deserializer=_wire.decode_calibrate_response)
        self._synthesize_dark: Any = None  # made on first use

    async def close(self) -> None:
        """Closes the channel (calls in progress are cancelled)."""
        await self._channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"calibd.aio.Client({self.address!r})"

    async def _unary(self, method: Any, request: Any, what: str) -> Any:
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, what) from None

    def _stream_timeout(self, timeout: Optional[float]) -> Optional[float]:
        return timeout if timeout is not None else self.stream_timeout

    async def _pages(self, method: Any, request_type: Any, page_size: Optional[int], what: str,
                     **fields: Any) -> AsyncIterator[Any]:
        token = ""
        while True:
            req = request_type(**fields)
            _requests.set_page(req, page_size, token)
            resp = await self._unary(method, req, what)
            yield resp
            token = _requests.next_token(resp)
            if not token or not _requests.has_paging(request_type):
                return

    # -- health, detectors, DQ bits ----------------------------------------------------------

    async def health(self, service: str = "") -> str:
        """The server's health: "SERVING", "NOT_SERVING", ..."""
        r = await self._unary(self._health.Check, health_pb2.HealthCheckRequest(service=service),
                              "health")
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    async def put_detector(self, spec: Any) -> Dict[str, Any]:
        """See `calibd.Client.put_detector`."""
        req = store_pb2.PutDetectorRequest(spec=_requests.detector_spec(spec))
        r = await self._unary(self._store.PutDetector, req, f"put detector {req.spec.name}")
        return _requests.detector_dict(r.spec)

    async def get_detector(self, name: str, version: int = 0) -> Dict[str, Any]:
        """See `calibd.Client.get_detector`."""
        r = await self._unary(self._store.GetDetector,
                              store_pb2.GetDetectorRequest(name=name, version=version),
                              f"get detector {name}")
        return _requests.detector_dict(r)

    async def detectors(self, page_size: Optional[int] = None) -> List[Dict[str, Any]]:
        """See `calibd.Client.detectors`."""
        out: List[Dict[str, Any]] = []
        async for r in self._pages(self._store.ListDetectors, store_pb2.ListDetectorsRequest,
                                   page_size, "list detectors"):
            out.extend(_requests.detector_dict(d) for d in r.detectors)
        return out

    async def dq_bits(self, detector: str = "") -> List[DqBit]:
        """See `calibd.Client.dq_bits`."""
        r = await self._unary(self._store.GetDqBits,
                              store_pb2.GetDqBitsRequest(detector=detector), "get DQ bits")
        return _requests.dq_bits(r)

    # -- masters ---------------------------------------------------------------------------

    async def list_masters(self, detector: Optional[str] = None, kind: Optional[str] = None,
                           page_size: Optional[int] = None) -> List[MasterVersion]:
        """See `calibd.Client.list_masters`."""
        out: List[MasterVersion] = []
        async for r in self._pages(self._store.ListMasters, store_pb2.ListMastersRequest,
                                   page_size, "list masters", detector=detector or "",
                                   kind=kind or ""):
            out.extend(MasterVersion.from_proto(v) for v in r.versions)
        return out

    async def history(self, detector: str, kind: str,
                      configuration: Optional[Mapping[str, str]] = None,
                      page_size: Optional[int] = None) -> History:
        """See `calibd.Client.history`."""
        versions: List[MasterVersion] = []
        events: List[HistoryEvent] = []
        async for r in self._pages(self._store.History, store_pb2.HistoryRequest, page_size,
                                   f"history {detector} {kind}", detector=detector, kind=kind,
                                   configuration=dict(configuration or {})):
            versions.extend(MasterVersion.from_proto(v) for v in r.versions)
            events.extend(HistoryEvent.from_proto(e) for e in r.events)
        return History(versions, events)

    async def get_master(self, detector: str, kind: str, version: Optional[int] = None,
                         at: Any = None, configuration: Optional[Mapping[str, str]] = None,
                         timeout: Optional[float] = None):
        """See `calibd.Client.get_master`."""
        req = _requests.get_master_request(detector, kind, version, at, configuration)
        dl = _requests.MasterDownload()
        try:
            async for resp in self._store.GetMaster(req, timeout=self._stream_timeout(timeout),
                                                    metadata=self._metadata):
                dl.add(resp)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, f"get {detector} {kind}") from None
        mv, data = dl.finish()
        return await asyncio.get_running_loop().run_in_executor(
            None, _requests.master_ccddata, data, mv)

    async def put_master(self, master: Any, detector: str, kind: str,
                         configuration: Optional[Mapping[str, str]] = None,
                         attributes: Optional[Mapping[str, str]] = None, obs_time: Any = None,
                         timeout: Optional[float] = None) -> PutResult:
        """See `calibd.Client.put_master`."""
        data = await asyncio.get_running_loop().run_in_executor(None, _requests.master_bytes,
                                                                master)
        reqs = _requests.put_master_requests(data, detector, kind, configuration, attributes,
                                             obs_time)
        try:
            r = await self._store.PutMaster(reqs, timeout=self._stream_timeout(timeout),
                                            metadata=self._metadata)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, f"put {detector} {kind}") from None
        return PutResult(MasterVersion.from_proto(r.version), r.already_existed)

    async def certify(self, detector: str, kind: str, version: int, begin: Any, end: Any = None,
                      configuration: Optional[Mapping[str, str]] = None, replace: bool = False,
                      reason: str = "") -> Certification:
        """See `calibd.Client.certify`."""
        req = _requests.certify_request(detector, kind, version, begin, end, configuration,
                                        replace, reason)
        r = await self._unary(self._store.Certify, req, f"certify {detector} {kind} v{version}")
        return Certification.from_proto(r.certification)

    async def decertify(self, detector: str, kind: str, version: int, begin: Any = None,
                        end: Any = None, configuration: Optional[Mapping[str, str]] = None,
                        reason: str = "") -> MasterVersion:
        """See `calibd.Client.decertify`."""
        req = _requests.decertify_request(detector, kind, version, begin, end, configuration,
                                          reason)
        r = await self._unary(self._store.Decertify, req,
                              f"decertify {detector} {kind} v{version}")
        return MasterVersion.from_proto(r.version)

    async def select(self, header: Any, detector: str, policy: str = "strict",
                     pins: Optional[Mapping[str, Any]] = None, max_age: Optional[float] = None,
                     kinds: Optional[Sequence[str]] = None,
                     recipe: Optional[Mapping[str, Any]] = None,
                     dark_policy: Optional[str] = None, **noise: Optional[bool]) -> Selection:
        """See `calibd.Client.select`."""
        req = _requests.select_request(detector, header, policy, pins, max_age, kinds, recipe,
                                       dark_policy, noise)
        return Selection.from_proto(await self._unary(self._store.Select, req,
                                                      f"select {detector}"))

    async def build(self, kind: str, frames: Any, detector: str, method: str = "median",
                    sigma_clip: bool = False, sigma_clip_low_thresh: float = 3.0,
                    sigma_clip_high_thresh: float = 3.0, sigma_clip_func: Any = "median",
                    sigma_clip_dev_func: Any = "std", maxiters: Optional[int] = None,
                    clip_extrema: bool = False, nlow: int = 1, nhigh: int = 1,
                    minmax_clip: bool = False, minmax_clip_min: Optional[float] = None,
                    minmax_clip_max: Optional[float] = None, scale: Any = None,
                    scale_section: Optional[str] = None,
                    weights: Optional[Sequence[float]] = None, variance: Optional[str] = None,
                    preprocess: Optional[Mapping[str, Any]] = None, policy: str = "strict",
                    pins: Optional[Mapping[str, Any]] = None,
                    configuration: Optional[Mapping[str, str]] = None,
                    attributes: Optional[Mapping[str, str]] = None, certify_from: Any = None,
                    certify_until: Any = None, replace: bool = False,
                    timeout: Optional[float] = None, **noise_options: Any) -> BuildResult:
        """See `calibd.Client.build` (the same options, ccdproc.combine's names)."""
        combine = _requests.combine_options(
            method, sigma_clip, sigma_clip_low_thresh, sigma_clip_high_thresh, sigma_clip_func,
            sigma_clip_dev_func, maxiters, clip_extrema, nlow, nhigh, minmax_clip,
            minmax_clip_min, minmax_clip_max, scale, scale_section, weights, variance)
        req = _requests.build_options(detector, kind, combine, preprocess, policy, pins,
                                      configuration, attributes, certify_from, certify_until,
                                      replace, noise_options)
        inputs = await asyncio.get_running_loop().run_in_executor(
            None, _requests.build_inputs, detector, frames)
        try:
            r = await self._build_master(_requests.build_requests(req, inputs),
                                         timeout=self._stream_timeout(timeout),
                                         metadata=self._metadata)
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, f"build {detector} {kind}") from None
        return BuildResult.from_proto(r)

    # -- synthesized darks -------------------------------------------------------------------

    async def synthesize_dark(self, detector: str, exptime: float, em_gain: float = 1.0,
                              temperature: Optional[float] = None,
                              configuration: Optional[Mapping[str, str]] = None,
                              version: Optional[int] = None, at: Any = None,
                              planes: Optional[Sequence[str]] = None,
                              timeout: Optional[float] = None) -> CalibratedFrame:
        """See `calibd.Client.synthesize_dark`."""
        req = _noise.synth_dark_request(detector, exptime, em_gain, temperature, configuration,
                                        version, at, planes)
        if self._synthesize_dark is None:
            self._synthesize_dark = self._channel.unary_stream(
                _noise.SYNTHESIZE_DARK, request_serializer=type(req).SerializeToString,
                response_deserializer=_noise.decode_synth_dark_response)
        out = _noise.SynthDarkAssembler()
        try:
            async for message in self._synthesize_dark(
                    req, timeout=self._stream_timeout(timeout), metadata=self._metadata):
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
                  timeout: Optional[float] = None) -> AsyncIterator[Result]:
        """See `calibd.Client.calibrate`; an async generator. ``frames`` may be an async
        iterable. Cancelling the consuming task (or closing the generator) cancels the stream.
        """
        template = _calibrate.frame_template(detector, unit, planes, policy, pins, max_age,
                                             dark_policy, recipe, {"read_noise_map": read_noise_map,
                                             "gain_product": gain_product, "bad_pixels": bad_pixels})
        return self._calibrate_stream(frames, template, window, self._stream_timeout(timeout))

    async def _calibrate_stream(self, frames: Any, template: Any, window: int,
                                timeout: Optional[float]) -> AsyncIterator[Result]:
        loop = asyncio.get_running_loop()
        call = self._calibrate(timeout=timeout, metadata=self._metadata)
        items: "asyncio.Queue[Optional[_calibrate.Item]]" = asyncio.Queue()
        slots = asyncio.Semaphore(max(1, int(window)))

        async def frames_iter():
            if hasattr(frames, "__aiter__"):
                async for f in frames:
                    yield f
            else:
                for f in _calibrate.as_iterable(frames):
                    yield f

        async def writer() -> None:
            index = 0
            try:
                async for frame in frames_iter():
                    await slots.acquire()
                    item = _calibrate.Item(index, _convert.frame_id(frame, index))
                    index += 1
                    try:
                        fid, header, pixels = await loop.run_in_executor(
                            None, _calibrate.prepare, template, frame, item.index)
                    except Exception as e:  # noqa: BLE001 - reported in the frame's place
                        item.error = e
                        slots.release()
                        items.put_nowait(item)
                        continue
                    item.frame_id = fid
                    items.put_nowait(item)
                    await call.write(header)
                    for chunk in _calibrate.pixel_chunks(pixels):
                        await call.write(chunk)
                await call.done_writing()
            except asyncio.CancelledError:
                raise
            except BaseException as e:  # noqa: BLE001
                if not call.done():  # the caller's iterable failed (else: the reader says why)
                    items.put_nowait(_calibrate.Item(index, "", e, fatal=True))
            finally:
                items.put_nowait(None)

        ended = asyncio.Event()
        call.add_done_callback(lambda _: ended.set())

        async def next_item() -> Optional[_calibrate.Item]:
            """The next item in order; None when the writer is done or the call ended."""
            if items.empty() and not ended.is_set():
                get = asyncio.ensure_future(items.get())
                end = asyncio.ensure_future(ended.wait())
                await asyncio.wait({get, end}, return_when=asyncio.FIRST_COMPLETED)
                end.cancel()
                if get.done():
                    return get.result()
                get.cancel()
            return items.get_nowait() if not items.empty() else None

        task = asyncio.ensure_future(writer())
        assembler = _calibrate.ResultAssembler(window)
        finished = False
        try:
            while True:
                item = await next_item()
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
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        await _raise_if_failed(call)
                        raise _errors.Unavailable(
                            f"the stream ended before the result of {item.frame_id!r} came "
                            "back")
                    result = assembler.add(message, item.index)
                slots.release()
                yield result
            while await call.read() is not grpc.aio.EOF:
                pass
            await _raise_if_failed(call)
            finished = True
        except grpc.RpcError as e:
            raise _errors.from_rpc_error(e, "calibrate stream") from None
        finally:
            if not finished:
                call.cancel()
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled or already reported
                pass
