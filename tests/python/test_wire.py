"""The hand-written wire encoding of pixel chunks against protobuf's own, and the header-card
and time conversions (no server)."""
import datetime as dt

import numpy as np
import pytest
from astropy.io import fits

import calibd
from calibd import _calibrate, _convert, _wire
from calibd._proto import builder_pb2, calibrator_pb2, types_pb2


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16384, 1 << 20])
def test_chunk_encoding_equals_protobuf(n):
    data = (np.arange(n, dtype=np.uint32) * 2654435761 % 251).astype(np.uint8)
    view = memoryview(data)
    ours = _wire.encode_chunk(_wire.Chunk(view))
    theirs = calibrator_pb2.CalibrateRequest(chunk=types_pb2.PixelChunk(data=data.tobytes()))
    # Same message; byte-identical too except that proto3 omits an empty bytes field.
    assert calibrator_pb2.CalibrateRequest.FromString(ours) == theirs
    if n:
        assert ours == theirs.SerializeToString()
    build = _wire.encode_chunk(_wire.build_chunk(view))
    assert n == 0 or build == builder_pb2.BuildMasterRequest(
        chunk=types_pb2.PixelChunk(data=data.tobytes())).SerializeToString()


def test_response_decoding_equals_protobuf():
    payload = bytes(range(256)) * 10
    msg = calibrator_pb2.CalibrateResponse(
        chunk=calibrator_pb2.ResultChunk(plane=types_pb2.PLANE_VARIANCE, data=payload))
    got = _wire.decode_calibrate_response(msg.SerializeToString())
    assert isinstance(got, _wire.ResultChunk)
    assert got.plane == types_pb2.PLANE_VARIANCE
    assert got.data.tobytes() == payload
    h = calibrator_pb2.CalibrateResponse(header=calibrator_pb2.ResultHeader(
        frame_id="f", width=3, height=2, planes=[1, 3]))
    got = _wire.decode_calibrate_response(h.SerializeToString())
    assert isinstance(got, calibrator_pb2.ResultHeader)
    assert got == h.header


def test_chunks_are_views_of_the_array_at_most_1_mib():
    a = np.arange(1000 * 700, dtype="<u2").reshape(700, 1000)
    chunks = list(_calibrate.pixel_chunks(a))
    assert [c.data.nbytes for c in chunks] == [1 << 20, a.nbytes - (1 << 20)]
    assert all(c.data.obj is not None for c in chunks)
    a[0, 0] = 4242  # a view, not a copy: the chunk sees the change
    assert bytes(chunks[0].data[:2]) == np.uint16(4242).tobytes()
    assert b"".join(bytes(c.data) for c in chunks) == a.tobytes()


def test_big_endian_pixels_become_little_endian():
    a = np.arange(12, dtype=">i2").reshape(3, 4)
    le = _convert.little_endian_pixels(a)
    assert le.dtype == np.dtype("<i2") and np.array_equal(le, a)
    b = np.zeros((3, 4), dtype="<f4")
    assert _convert.little_endian_pixels(b) is b  # no copy when already right
    with pytest.raises(calibd.InvalidArgument):
        _convert.little_endian_pixels(np.zeros((2, 2), dtype=np.complex64))
    with pytest.raises(calibd.InvalidArgument):
        _convert.little_endian_pixels(np.zeros(4, dtype=np.uint16))


def test_header_cards_round_trip():
    h = fits.Header()
    h["SIMPLE"] = True
    h["NAXIS"] = 2
    h["NAXIS1"] = 10
    h["EXPTIME"] = (120.0, "exposure [s]")
    h["GAINMODE"] = 2
    h["FILTER"] = "R"
    h["FLAG"] = False
    h["HIERARCH ESO DET CHIP NAME"] = "chip0"
    h.add_history("raw frame")
    cards = _convert.header_to_cards(h)
    keys = [c.key for c in cards]
    assert "SIMPLE" not in keys and "NAXIS" not in keys and "NAXIS1" not in keys
    by_key = {c.key: c for c in cards}
    assert by_key["EXPTIME"].double_value == 120.0 and by_key["EXPTIME"].comment == "exposure [s]"
    assert by_key["GAINMODE"].int_value == 2
    assert by_key["FILTER"].string_value == "R"
    assert by_key["FLAG"].WhichOneof("value") == "bool_value" and not by_key["FLAG"].bool_value
    assert by_key["ESO DET CHIP NAME"].string_value == "chip0"
    assert by_key["HISTORY"].comment == "raw frame"
    back = _convert.cards_to_header(cards)
    assert back["EXPTIME"] == 120.0 and back["FILTER"] == "R" and back["FLAG"] is False
    assert back["ESO DET CHIP NAME"] == "chip0"
    assert list(back["HISTORY"]) == ["raw frame"]


def test_times():
    ts = types_pb2.Certification().begin
    _convert.set_timestamp(ts, "2026-03-01T00:00:00Z")
    assert ts.seconds == 1772323200 and ts.nanos == 0
    assert _convert.from_timestamp(ts) == dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    _convert.set_timestamp(ts, dt.datetime(2026, 3, 1, 0, 0, 1, 500000))  # naive = UTC
    assert (ts.seconds, ts.nanos) == (1772323201, 500000000)
    assert _convert.from_timestamp(types_pb2.Certification().end) is None
    with pytest.raises(calibd.InvalidArgument):
        _convert.to_datetime("yesterday")


def test_options_are_checked_locally():
    with pytest.raises(calibd.InvalidArgument, match="unit="):
        _calibrate.frame_template("d/x", unit="photons")
    with pytest.raises(calibd.InvalidArgument, match="policy="):
        _calibrate.frame_template("d/x", policy="loose")
    with pytest.raises(calibd.InvalidArgument, match="planes="):
        _calibrate.frame_template("d/x", planes=["data", "noise"])
    t = _calibrate.frame_template("d/x", unit="electron", planes="data,dq", policy="nearest",
                                  pins={"bias": 3, "flat": "a" * 64}, max_age=86400,
                                  dark_policy="skip", recipe={"flat_norm": "clipped_mean"})
    assert t.unit == types_pb2.OUTPUT_UNIT_ELECTRON
    assert list(t.planes) == [types_pb2.PLANE_DATA, types_pb2.PLANE_DQ]
    assert t.selection.policy == types_pb2.SELECTION_POLICY_NEAREST
    assert t.selection.max_age.seconds == 86400
    assert [(p.kind, p.version, p.sha256) for p in t.selection.pins] == [
        ("bias", 3, ""), ("flat", 0, "a" * 64)]
    assert t.recipe.HasField("dark") and not t.recipe.dark
    assert t.recipe.flat_norm == "clipped_mean"


def test_errors_carry_codes():
    import grpc
    e = calibd._errors.error_for(5, "no such version")
    assert isinstance(e, calibd.NotFound) and e.code == grpc.StatusCode.NOT_FOUND
    fe = calibd.FrameError("no flat", 9, "light_000.fits", 0)
    assert fe.code == grpc.StatusCode.FAILED_PRECONDITION
    assert isinstance(fe.error, calibd.FailedPrecondition)
    assert isinstance(fe, calibd.Error)


@pytest.mark.parametrize("shape", [(37, 53), (3, 5), (64, 64)])
def test_fast_writer_output_verifies_with_astropy(tmp_path, shape):
    """calibd.reduce's writer computes CHECKSUM/DATASUM itself while writing; astropy must
    verify every HDU, and read back the same planes and header cards. Odd shapes leave partial
    32-bit words before the block padding; one writer serves several shapes (its buffers)."""
    import warnings
    from astropy.nddata import CCDData, StdDevUncertainty
    from calibd._fitsio import FitsWriter, write_calibrated
    rng = np.random.default_rng(3)
    header = fits.Header({"EXPTIME": 3.0, "CHECKSUM": "stale", "DATASUM": "1", "BITPIX": 8,
                          "LONGSTR": "x" * 100, "OBJECT": "it's M31"})
    header["HISTORY"] = "calibrated by calibd"
    header["HIERARCH CALIBD LONG KEY"] = 7
    writer = FitsWriter()
    for _ in range(2):  # the second frame reuses the first one's buffers
        data = rng.normal(100, 5, size=shape).astype(np.float32)
        ccd = CCDData(data, unit="electron", uncertainty=StdDevUncertainty(np.sqrt(data)),
                      meta=header)
        ccd.dq = (rng.random(shape) > 0.9).astype(np.uint16) * 8
        ccd.dq[0, 0] = 0x8001  # the sign bit of the stored int16
        path = str(tmp_path / "out.fits")
        writer.write(ccd, path, overwrite=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path, checksum=True) as hdul:
                assert [h.name for h in hdul] == ["PRIMARY", "UNCERT", "MASK", "DQ"]
                for h in hdul:
                    assert h.verify_checksum() == 1 and h.verify_datasum() == 1, h.name
                np.testing.assert_array_equal(hdul["DQ"].data, ccd.dq)
                np.testing.assert_array_equal(hdul["MASK"].data, ccd.dq != 0)
                np.testing.assert_array_equal(hdul["UNCERT"].data, np.sqrt(data))
                h0 = hdul[0].header
                assert h0["LONGSTR"] == "x" * 100 and h0["OBJECT"] == "it's M31"
                assert h0["CALIBD LONG KEY"] == 7 and h0["BITPIX"] == -32
                assert list(h0["HISTORY"]) == ["calibrated by calibd"]
        back = CCDData.read(path)
        np.testing.assert_array_equal(back.data, data)
        assert back.unit == "electron"
    with pytest.raises(calibd.AlreadyExists):
        write_calibrated(ccd, path)


def test_checksum_encoding_matches_astropy():
    from calibd._fitsio import encode_checksum
    rng = np.random.default_rng(3)
    # The encoding equals astropy's own (its private encoder as the oracle).
    from astropy.io.fits.hdu.base import _ValidHDU
    theirs = _ValidHDU.__new__(_ValidHDU)
    for v in [0, 0xFFFFFFFF, 1, 0x3A3A3A3A, *rng.integers(0, 2**32, size=50)]:
        assert encode_checksum(int(v)) == theirs._char_encode(~np.uint32(v)), v
    assert encode_checksum(0xFFFFFFFF) == "0000000000000000"


def _result_messages(n=64, planes=(1, 2, 3)):
    h = calibrator_pb2.ResultHeader(frame_id="x", width=n, height=n, planes=list(planes), unit=1)
    out = [calibrator_pb2.CalibrateResponse(header=h).SerializeToString()]
    for p in planes:
        size = n * n * (2 if p == types_pb2.PLANE_DQ else 4)
        out.append(calibrator_pb2.CalibrateResponse(chunk=calibrator_pb2.ResultChunk(
            plane=p, data=bytes([p]) * size)).SerializeToString())
    return out


def _assemble(assembler, messages):
    result = None
    for m in messages:
        result = assembler.add(_wire.decode_calibrate_response(m), 0)
    return result


def test_result_buffers_are_reused_only_when_dropped():
    a = _calibrate.ResultAssembler(window=1)
    msgs = _result_messages()
    first = _assemble(a, msgs)
    assert isinstance(first, calibd.CalibratedFrame) and first.dq[0, 0] == 0x0303
    held = [_assemble(a, msgs) for _ in range(2)] + [first]
    assert len(a._pool._arrays) == 12  # 3 frames x (data, variance, dq, mask): all alive
    assert len({id(r.data) for r in held}) == 3
    del held, first
    for _ in range(5):  # the consumer keeps only the latest: the same buffers come back
        latest = _assemble(a, msgs)
        assert latest.data[0, 0] == np.frombuffer(b"\x01" * 4, "<f4")[0]
        del latest
    assert len(a._pool._arrays) == 12
    view = _assemble(a, msgs).data[:2]  # a view keeps its frame's data plane in use
    other = _assemble(a, msgs)
    assert not np.shares_memory(view, other.data)


def test_paging_follows_next_page_tokens():
    """Client._pages against a fake ListMasters that pages by two (no server needed)."""
    from calibd._proto import store_pb2
    versions = [types_pb2.MasterVersion(kind="bias", version=v) for v in range(1, 6)]
    seen = []

    def fake(request, timeout=None, metadata=None):
        seen.append((request.detector, request.page_size, request.page_token))
        start = int(request.page_token or 0)
        end = start + request.page_size
        return store_pb2.ListMastersResponse(
            versions=versions[start:end], next_page_token=str(end) if end < len(versions) else "")

    c = calibd.Client("127.0.0.1:1")  # never connects: the fake answers
    try:
        c._store.ListMasters = fake
        got = c.list_masters(detector="d", page_size=2)
    finally:
        c.close()
    assert [v.version for v in got] == [1, 2, 3, 4, 5]
    assert seen == [("d", 2, ""), ("d", 2, "2"), ("d", 2, "4")]


def test_dark_policy_and_noise_switches_map_to_recipe_overrides():
    r = _calibrate.recipe_overrides(dark_policy="exact")
    assert r.HasField("dark_scale") and not r.dark_scale and not r.HasField("dark")
    r = _calibrate.recipe_overrides(dark_policy="skip")
    assert r.HasField("dark") and not r.dark
    with pytest.raises(calibd.InvalidArgument, match="dark_policy='guess'"):
        _calibrate.recipe_overrides(dark_policy="guess")
    with pytest.raises(calibd.InvalidArgument, match="unknown noise switch"):
        _calibrate.recipe_overrides(noise={"flat_map": True})
    fields = types_pb2.RecipeOverrides.DESCRIPTOR.fields_by_name
    if "dark_policy" in fields:
        r = _calibrate.recipe_overrides(dark_policy="measured_else_synthesized",
                                        noise={"read_noise_map": True, "bad_pixels": False,
                                               "gain_product": None})
        assert r.dark_policy == types_pb2.DARK_POLICY_MEASURED_ELSE_SYNTHESIZED
        assert r.HasField("read_noise_map") and r.read_noise_map
        assert r.HasField("bad_pixels") and not r.bad_pixels
        assert not r.HasField("gain_product")
        h = _calibrate.frame_template("a/b", dark_policy="synthesized")
        assert h.recipe.dark_policy == types_pb2.DARK_POLICY_SYNTHESIZED
    else:  # a client built before the API had them says so instead of ignoring them
        with pytest.raises(calibd.Unimplemented):
            _calibrate.recipe_overrides(dark_policy="synthesized")
        with pytest.raises(calibd.Unimplemented):
            _calibrate.recipe_overrides(noise={"read_noise_map": True})


def test_synthesized_dark_messages_assemble_into_a_frame():
    try:
        from calibd._proto import noise_pb2
    except ImportError:
        pytest.skip("this calibd API has no Noise.SynthesizeDark yet")
    from calibd import _noise
    n = 8
    result = calibrator_pb2.ResultHeader(frame_id="synth", width=n, height=n,
                                         planes=[types_pb2.PLANE_DATA, types_pb2.PLANE_DQ],
                                         unit=types_pb2.OUTPUT_UNIT_ELECTRON)
    result.masters.add(kind="noise_model", version=3)
    head = noise_pb2.SynthesizeDarkResponse(header=noise_pb2.SynthesizeDarkHeader(
        result=result, model=types_pb2.MasterVersion(kind="noise_model", version=3)))
    data = np.arange(n * n, dtype="<f4").reshape(n, n)
    dq = np.full((n, n), 2, dtype="<u2")
    msgs = [head.SerializeToString()] + [
        noise_pb2.SynthesizeDarkResponse(chunk=calibrator_pb2.ResultChunk(
            plane=p, data=a.tobytes())).SerializeToString()
        for p, a in ((types_pb2.PLANE_DATA, data), (types_pb2.PLANE_DQ, dq))]
    out = _noise.SynthDarkAssembler()
    for m in msgs:
        out.add(_noise.decode_synth_dark_response(m))
    frame = out.finish()
    np.testing.assert_array_equal(frame.data, data)
    np.testing.assert_array_equal(frame.dq, dq)
    assert frame.unit == "electron" and frame.model.version == 3 and frame.mask.all()
    bad = noise_pb2.SynthesizeDarkResponse(header=noise_pb2.SynthesizeDarkHeader(
        result=calibrator_pb2.ResultHeader(status={"code": 5, "message": "no model"})))
    with pytest.raises(calibd.NotFound):
        _noise.SynthDarkAssembler().add(_noise.decode_synth_dark_response(
            bad.SerializeToString()))
    with pytest.raises(calibd.Unavailable):
        _noise.SynthDarkAssembler().finish()


@pytest.mark.parametrize("split", [1 << 20, 4096, 999, 7])
def test_streamed_file_equals_the_ccddata_writer(tmp_path, split):
    """calibd.reduce's FileAssembler converts each chunk where it lands; whatever the chunk
    boundaries (also ones splitting a pixel), the file equals FitsWriter's for the CCDData the
    ResultAssembler builds from the same messages."""
    from calibd import _filestream
    from calibd._fitsio import FitsWriter
    rng = np.random.default_rng(5)
    hgt, wid = 37, 29
    planes = {types_pb2.PLANE_DATA: rng.normal(0, 10, (hgt, wid)).astype("<f4"),
              types_pb2.PLANE_VARIANCE: rng.uniform(0, 50, (hgt, wid)).astype("<f4"),
              types_pb2.PLANE_DQ: (rng.random((hgt, wid)) > 0.8).astype("<u2") * 0x8004}
    h = calibrator_pb2.ResultHeader(frame_id="f.fits", width=wid, height=hgt,
                                    planes=list(planes), unit=types_pb2.OUTPUT_UNIT_ELECTRON)
    h.cards.add(key="EXPTIME", double_value=30.0)
    h.cards.add(key="OBJECT", string_value="M31")
    msgs = [calibrator_pb2.CalibrateResponse(header=h).SerializeToString()]
    for p, a in planes.items():
        raw = a.tobytes()
        for off in range(0, len(raw), split):
            msgs.append(calibrator_pb2.CalibrateResponse(chunk=calibrator_pb2.ResultChunk(
                plane=p, data=raw[off:off + split])).SerializeToString())
    ccd = _assemble(_calibrate.ResultAssembler(), msgs)
    FitsWriter().write(ccd, str(tmp_path / "ccddata.fits"))
    fa = _filestream.FileAssembler()
    for round_ in range(2):  # the second frame reuses the buffers once released
        result = None
        for m in msgs:
            result = fa.add(_wire.decode_calibrate_response(m), 0)
        assert isinstance(result, _filestream.FileResult) and result.frame_id == "f.fits"
        result.write(str(tmp_path / "streamed.fits"), overwrite=True)
        with open(tmp_path / "ccddata.fits", "rb") as a, open(tmp_path / "streamed.fits",
                                                              "rb") as b:
            assert a.read() == b.read()
    assert len(fa._sets) == 1
