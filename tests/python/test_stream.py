"""The Calibrate stream's contract through the package, against real calibd processes: a bad
frame yields a FrameError with its exact code in its place and the stream goes on; auth;
deadlines; cancellation (closing the generator, KeyboardInterrupt); a server restart between
calls; a 4096² frame round trip."""
import _thread
import os
import shutil
import subprocess
import threading
import time

import grpc
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData

import calibd
from conftest import DETECTOR, NIGHT, kind_files


def light(samples, i=0):
    with fits.open(kind_files(samples, "light")[i]) as hdul:
        return hdul[0].data.copy(), hdul[0].header.copy()


def test_bad_frames_yield_frame_errors_in_place(reduced_server, samples, tmp_path):
    data, header = light(samples)
    v_filter = header.copy()
    v_filter["FILTER"] = "V"  # no flat certified for V under the strict policy
    unknown = header.copy()
    unknown["DETECTOR"] = "nope/none"
    good = header.copy()
    good["DETECTOR"] = DETECTOR
    junk = tmp_path / "junk.fits"
    junk.write_text("not a FITS file")
    frames = [
        (data, good, "good_0"),
        (data, v_filter, "v_filter"),
        (data[:, :100], good, "narrow"),
        (data, unknown, "unknown_detector"),
        str(tmp_path / "missing.fits"),
        str(junk),
        (data[:0], good, "empty"),  # refused locally: it would end the whole stream
        (data, good, "good_1"),
    ]
    v_filter["DETECTOR"] = DETECTOR
    with calibd.Client(reduced_server.address) as c:
        results = list(c.calibrate(frames, detector=None))
    assert len(results) == len(frames)
    ok = [r for r in results if not isinstance(r, calibd.FrameError)]
    assert [r.frame_id for r in ok] == ["good_0", "good_1"]
    np.testing.assert_array_equal(ok[0].data, ok[1].data)
    codes = {r.frame_id: r.code for r in results if isinstance(r, calibd.FrameError)}
    assert codes == {
        "v_filter": grpc.StatusCode.FAILED_PRECONDITION,
        "narrow": grpc.StatusCode.INVALID_ARGUMENT,
        "unknown_detector": grpc.StatusCode.NOT_FOUND,
        "missing.fits": grpc.StatusCode.NOT_FOUND,
        "junk.fits": grpc.StatusCode.INVALID_ARGUMENT,
        "empty": grpc.StatusCode.INVALID_ARGUMENT,
    }
    errors = [r for r in results if isinstance(r, calibd.FrameError)]
    assert [e.index for e in errors] == [1, 2, 3, 4, 5, 6]
    assert isinstance(errors[0].error, calibd.FailedPrecondition)
    assert "flat" in errors[0].message


def test_no_detector_anywhere_is_a_local_frame_error(reduced_server, samples):
    data, header = light(samples)
    with calibd.Client(reduced_server.address) as c:
        (r,) = c.calibrate([(data, header)])
    assert isinstance(r, calibd.FrameError) and r.code == grpc.StatusCode.INVALID_ARGUMENT


def test_unary_errors_are_typed(reduced_server):
    with calibd.Client(reduced_server.address) as c:
        with pytest.raises(calibd.NotFound) as e:
            c.get_master(DETECTOR, "bias", version=7)
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        # The server's calibd-request-id trailer, for the operator's logs.
        assert e.value.request_id and len(e.value.request_id) >= 8
        assert str(e.value).count(e.value.request_id) == 1
        with pytest.raises(calibd.NotFound):
            c.get_detector("nope/none")
        with pytest.raises(calibd.AlreadyExists):
            c.certify(DETECTOR, "bias", 1, "2026-03-02")
        # Nothing escapes as a raw grpc.RpcError.
        with pytest.raises(calibd.Error) as e:
            c.get_master(DETECTOR, "bias", version=7)
        assert not isinstance(e.value, grpc.RpcError)


def write_tokens(tmp_path):
    p = tmp_path / "tokens"
    p.write_text("# test tokens\nadm1n-secret admin alice\nre4d-secret read bob\n")
    return str(p)


def test_auth_missing_wrong_and_read_only_tokens(make_server, samples, tmp_path):
    s = make_server(["--tokens", write_tokens(tmp_path)])
    spec = os.path.join(samples, "SPEC.json")
    with calibd.Client(s.address) as c:
        with pytest.raises(calibd.Unauthenticated) as e:
            c.list_masters()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(calibd.Unauthenticated):
            list(c.calibrate(kind_files(samples, "light")[:1], detector=DETECTOR))
    with calibd.Client(s.address, token="wrong") as c:
        with pytest.raises(calibd.Unauthenticated):
            c.detectors()
    with calibd.Client(s.address, token="re4d-secret") as c:
        assert c.detectors() == []
        with pytest.raises(calibd.PermissionDenied) as e:
            c.put_detector(spec)
        assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    with calibd.Client(s.address, token="adm1n-secret") as c:
        assert c.put_detector(spec)["actor"] == "alice"
        (r,) = c.calibrate(kind_files(samples, "light")[:1], detector=DETECTOR)
        assert r.code == grpc.StatusCode.FAILED_PRECONDITION  # no masters yet: authorised


def test_deadline_ends_the_stream(reduced_server, samples):
    data, header = light(samples)

    def slow_camera():
        yield data, header, "first"
        time.sleep(3)  # the next readout comes after the deadline
        yield data, header, "second"

    got = []
    t0 = time.monotonic()
    with calibd.Client(reduced_server.address) as c:
        with pytest.raises(calibd.DeadlineExceeded) as e:
            for r in c.calibrate(slow_camera(), detector=DETECTOR, timeout=1.0):
                got.append(r)
    assert time.monotonic() - t0 < 2.9
    assert [r.frame_id for r in got] == ["first"]
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    with calibd.Client(reduced_server.address, timeout=1e-6) as c:
        with pytest.raises(calibd.DeadlineExceeded):
            c.list_masters()


class Camera:
    """An endless readout that counts the frames the stream pulled."""

    def __init__(self, samples, on_pull=None):
        self.data, self.header = light(samples)
        self.pulled = 0
        self.on_pull = on_pull

    def __iter__(self):
        while True:
            self.pulled += 1
            if self.on_pull:
                self.on_pull(self.pulled)
            yield self.data, self.header, f"exp_{self.pulled}"

    def settled(self):
        """The count once it stopped moving (the stream's writer has stopped)."""
        last = -1
        while last != self.pulled:
            last = self.pulled
            time.sleep(0.3)
        return last


def test_closing_the_generator_cancels_the_stream(reduced_server, samples):
    cam = Camera(samples)
    with calibd.Client(reduced_server.address) as c:
        stream = c.calibrate(cam, detector=DETECTOR, window=2)
        first = [next(stream) for _ in range(3)]
        stream.close()
        pulled = cam.settled()
        assert pulled <= 3 + 2 + 1  # at most the window (and the one being pulled) beyond
        assert [r.frame_id for r in first] == ["exp_1", "exp_2", "exp_3"]
        # The server is fine and the client too.
        assert c.health() == "SERVING"
        assert len(list(c.calibrate(kind_files(samples, "light"), detector=DETECTOR))) == 3


def test_keyboard_interrupt_cancels_the_stream(reduced_server, samples):
    fired = threading.Event()

    def interrupt(n):
        if n == 6 and not fired.is_set():
            fired.set()
            _thread.interrupt_main()  # what Ctrl-C does to the consuming thread

    cam = Camera(samples, interrupt)
    got = []
    with calibd.Client(reduced_server.address) as c:
        with pytest.raises(KeyboardInterrupt):
            for r in c.calibrate(cam, detector=DETECTOR, window=2):
                got.append(r)
                time.sleep(0.05)
        pulled = cam.settled()
        assert fired.is_set() and pulled <= 6 + 2 + 1
        assert all(isinstance(r, calibd.CalibratedFrame) for r in got)
        assert c.health() == "SERVING"


def test_server_restart_between_calls(make_server, samples):
    s = make_server()
    with calibd.Client(s.address, timeout=5) as c:
        c.put_detector(os.path.join(samples, "SPEC.json"))
        c.build("bias", kind_files(samples, "bias"), detector=DETECTOR, certify_from=NIGHT)
        s.kill()  # a crash (SIGTERM works too, but drains for seconds while we stay connected)
        with pytest.raises(calibd.Unavailable) as e:
            c.list_masters()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(calibd.Unavailable):
            list(c.calibrate(kind_files(samples, "light")[:1], detector=DETECTOR))
        s.start()  # same port, same store; the client's channel reconnects by itself
        (v,) = c.list_masters()
        assert v.kind == "bias" and v.certified
        results = list(c.calibrate(kind_files(samples, "light"), detector=DETECTOR,
                                   recipe={"dark": False, "flat": False}))
        assert [type(r) for r in results] == [calibd.CalibratedFrame] * 3


def test_4096_squared_round_trip(make_server):
    s = make_server()
    n = 4096
    rng = np.random.default_rng(11)
    raw = rng.integers(0, 60000, size=(n, n), dtype=np.uint16)
    header = fits.Header({"EXPTIME": 10.0, "DATE-OBS": "2026-03-01T20:00:00"})
    with calibd.Client(s.address) as c:
        c.put_detector({"name": "big/cmos", "width": n, "height": n, "gain": 2.0,
                        "read_noise": 3.0})
        t0 = time.monotonic()
        (r,) = c.calibrate([CCDData(raw, unit="adu", meta=header)], detector="big/cmos",
                           recipe={"bias": False, "dark": False, "flat": False})
        seconds = time.monotonic() - t0
    assert isinstance(r, calibd.CalibratedFrame), r
    assert r.shape == (n, n) and r.data.dtype == np.float32
    np.testing.assert_array_equal(r.data, raw.astype(np.float32))
    # ccdproc's create_deviation in ADU: sigma^2 = (g D + RN^2) / g^2.
    want = (2.0 * raw.astype(np.float64) + 9.0) / 4.0
    np.testing.assert_allclose(r.uncertainty.array.astype(np.float64) ** 2, want, rtol=2e-6)
    assert not r.dq.any() and not r.mask.any()
    assert seconds < 30


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls(make_server, samples, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    tls = calibd.TLS(ca=cert)
    s = make_server(["--tls-cert", cert, "--tls-key", key], client_kwargs={"tls": tls})
    with calibd.Client(s.address, tls={"ca": cert}) as c:
        c.put_detector(os.path.join(samples, "SPEC.json"))
        (r,) = c.calibrate(kind_files(samples, "light")[:1], detector=DETECTOR,
                           recipe={"bias": False, "dark": False, "flat": False})
        assert isinstance(r, calibd.CalibratedFrame)
    with calibd.Client(s.address, timeout=3) as c:  # plaintext to a TLS server
        with pytest.raises(calibd.Unavailable):
            c.detectors()
    with pytest.raises(calibd.NotFound):
        calibd.Client(s.address, tls=calibd.TLS(ca=str(tmp_path / "missing.pem")))
    with pytest.raises(calibd.InvalidArgument):
        calibd.Client(s.address, tls=calibd.TLS(ca=cert, cert=cert))
