"""calibd.aio.Client does the same reduction on asyncio: masters built through it on a fresh
server have exactly the blocking client's pixels (the FITS bytes differ only by their
timestamps), and the lights calibrate to
exactly the blocking client's results (which test_reduction checks against ccdproc and
calibctl); per-frame errors, async frame sources, cancellation and auth behave the same."""
import asyncio
import os

import grpc
import numpy as np
import pytest
from astropy.io import fits

import calibd
import calibd.aio
from conftest import DETECTOR, NIGHT, kind_files


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_aio_reduction_equals_the_blocking_client(make_server, reduced_server, samples):
    s = make_server()

    async def reduce():
        async with calibd.aio.Client(s.address) as c:
            assert await c.health() == "SERVING"
            await c.put_detector(os.path.join(samples, "SPEC.json"))
            builds = {}
            for kind in ("bias", "dark", "flat"):
                builds[kind] = await c.build(kind, kind_files(samples, kind), detector=DETECTOR,
                                             method="median", certify_from=NIGHT)
            results = [r async for r in c.calibrate(kind_files(samples, "light"),
                                                    detector=DETECTOR, unit="electron")]
            masters = await c.list_masters(page_size=2)
            pixels = {k: (await c.get_master(DETECTOR, k, version=1)).data for k in builds}
            return builds, results, masters, pixels

    builds, results, masters, pixels = run(reduce())
    assert [m.kind for m in masters] == ["bias", "dark", "flat"]
    with calibd.Client(reduced_server.address) as c:
        for kind, b in builds.items():
            assert b.inputs == 5 and b.certification is not None
            np.testing.assert_array_equal(pixels[kind],
                                          c.get_master(DETECTOR, kind, version=1).data)
        want = list(c.calibrate(kind_files(samples, "light"), detector=DETECTOR,
                                unit="electron"))
    assert [r.frame_id for r in results] == [r.frame_id for r in want]
    for a, b in zip(results, want):
        assert isinstance(a, calibd.CalibratedFrame)
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.uncertainty.array, b.uncertainty.array)
        np.testing.assert_array_equal(a.dq, b.dq)
        assert [(m.kind, m.version, m.outcome) for m in a.provenance] == [
            (m.kind, m.version, m.outcome) for m in b.provenance]
        assert {m.sha256 for m in a.provenance} == {b.version.sha256 for b in builds.values()}


def test_aio_async_source_errors_and_cancel(reduced_server, samples):
    with fits.open(kind_files(samples, "light")[0]) as hdul:
        data, header = hdul[0].data.copy(), hdul[0].header.copy()
    bad = header.copy()
    bad["FILTER"] = "V"
    pulled = []

    async def camera(n=None):
        i = 0
        while n is None or i < n:
            i += 1
            pulled.append(i)
            await asyncio.sleep(0)
            yield (data, bad if i == 2 else header, f"exp_{i}")

    async def go():
        async with calibd.aio.Client(reduced_server.address) as c:
            results = [r async for r in c.calibrate(camera(3), detector=DETECTOR)]
            # Cancel mid-stream: stop consuming an endless source.
            pulled.clear()
            stream = c.calibrate(camera(), detector=DETECTOR, window=2)
            first = [await stream.__anext__() for _ in range(3)]
            await stream.aclose()
            n = len(pulled)
            await asyncio.sleep(0.5)
            assert len(pulled) == n  # nothing more is read once the stream is closed
            assert n <= 3 + 2 + 1
            assert await c.health() == "SERVING"
            with pytest.raises(calibd.NotFound):
                await c.get_master(DETECTOR, "bias", version=9)
            return results, first

    results, first = run(go())
    assert isinstance(results[0], calibd.CalibratedFrame)
    assert isinstance(results[1], calibd.FrameError)
    assert results[1].code == grpc.StatusCode.FAILED_PRECONDITION
    assert isinstance(results[2], calibd.CalibratedFrame)
    assert [r.frame_id for r in first] == ["exp_1", "exp_2", "exp_3"]


def test_aio_auth_and_deadline(make_server, samples, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("adm1n admin alice\n")
    s = make_server(["--tokens", str(tokens)])

    async def go():
        async with calibd.aio.Client(s.address) as c:
            with pytest.raises(calibd.Unauthenticated):
                await c.detectors()
            with pytest.raises(calibd.Unauthenticated):
                async for _ in c.calibrate(kind_files(samples, "light")[:1], detector=DETECTOR):
                    pass
        async with calibd.aio.Client(s.address, token="adm1n") as c:
            await c.put_detector(os.path.join(samples, "SPEC.json"))

            async def slow():
                yield kind_files(samples, "light")[0]
                await asyncio.sleep(3)
                yield kind_files(samples, "light")[1]

            got = []
            with pytest.raises(calibd.DeadlineExceeded):
                async for r in c.calibrate(slow(), detector=DETECTOR, timeout=1.0):
                    got.append(r)
            assert [r.code for r in got] == [grpc.StatusCode.FAILED_PRECONDITION]

    run(go())
