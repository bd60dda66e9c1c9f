"""The store through the package: put/get masters with sha256 checks, listing (paged when the
server pages), history, certify/decertify, selection trails as objects, detectors, DQ bits."""
import os

import grpc
import numpy as np
import pytest
from astropy.nddata import CCDData

import calibd
from calibd import _requests
from calibd._proto import store_pb2, types_pb2
from conftest import DETECTOR, NIGHT, kind_files


@pytest.fixture
def store_server(make_server, samples):
    s = make_server()
    with calibd.Client(s.address) as c:
        c.put_detector(os.path.join(samples, "SPEC.json"))
        s.bias = c.build("bias", kind_files(samples, "bias"), detector=DETECTOR,
                         certify_from=NIGHT)
    return s


def test_get_master_is_ccddata_with_checked_sha(store_server, tmp_path):
    with calibd.Client(store_server.address) as c:
        ccd = c.get_master(DETECTOR, "bias", version=1)
        same = c.get_master(DETECTOR, "bias", at="2026-03-01T21:00:00Z")
    assert isinstance(ccd, CCDData) and ccd.shape == (96, 128)
    assert ccd.master.sha256 == store_server.bias.version.sha256
    assert same.master.version == 1
    np.testing.assert_array_equal(ccd.data, same.data)
    assert ccd.uncertainty is not None


def test_download_with_wrong_bytes_is_data_loss():
    dl = _requests.MasterDownload()
    dl.add(store_pb2.GetMasterResponse(metadata=types_pb2.MasterVersion(sha256="0" * 64)))
    dl.add(store_pb2.GetMasterResponse(chunk=b"damaged"))
    with pytest.raises(calibd.DataLoss) as e:
        dl.finish()
    assert e.value.code == grpc.StatusCode.DATA_LOSS


def test_put_master_round_trip_and_identical_reupload(store_server, tmp_path):
    with calibd.Client(store_server.address) as c:
        ccd = c.get_master(DETECTOR, "bias", version=1)
        # Bytes of a stored master: the identical upload returns the existing version.
        path = tmp_path / "bias.fits"
        ccd.write(str(path))
        put = c.put_master(str(path), DETECTOR, "bias", attributes={"source": "test"})
        assert put.version.version == 2 and not put.already_existed
        again = c.put_master(path.read_bytes(), DETECTOR, "bias")
        assert again.already_existed and again.version.sha256 == put.version.sha256
        # A CCDData is written as FITS the way CCDData.write does: the same bytes again.
        from_ccd = c.put_master(ccd, DETECTOR, "bias")
        assert from_ccd.already_existed and from_ccd.version.version == 2
        for version in (1, 2):
            back = c.get_master(DETECTOR, "bias", version=version)
            np.testing.assert_array_equal(back.data, ccd.data)
        with pytest.raises(calibd.NotFound):
            c.put_master(str(tmp_path / "missing.fits"), DETECTOR, "bias")
        with pytest.raises(calibd.NotFound):
            c.put_master(str(path), "nope/none", "bias")


def test_certify_decertify_history(store_server):
    with calibd.Client(store_server.address) as c:
        with pytest.raises(calibd.AlreadyExists):
            c.certify(DETECTOR, "bias", 1, "2026-03-02", "2026-03-03")
        cert = c.certify(DETECTOR, "bias", 1, "2026-03-02", "2026-03-03", replace=True,
                         reason="split")
        assert cert.version == 1 and cert.reason == "split"
        v = c.decertify(DETECTOR, "bias", 1, reason="bad night")
        assert v.version == 1 and not v.certified
        with pytest.raises(calibd.NotFound):
            c.decertify(DETECTOR, "bias", 1)
        h = c.history(DETECTOR, "bias")
        assert [x.version for x in h.versions] == [1]
        actions = [e.action for e in h.events]
        assert actions[0] == "put_master" and "certify" in actions and actions[-1] == "decertify"
        assert all(e.time is not None for e in h.events)


def test_select_explains_with_objects(store_server, samples):
    light = kind_files(samples, "light")[0]
    with calibd.Client(store_server.address) as c:
        sel = c.select(light, DETECTOR, kinds=["bias"])
        assert [m.kind for m in sel.masters] == ["bias"]
        assert sel.masters[0].outcome == "certified"
        (entry,) = sel.trail
        assert isinstance(entry, calibd.TrailEntry) and entry.outcome == "certified"
        assert entry.sha256 == store_server.bias.version.sha256
        chosen = [cand for cand in entry.candidates if cand.chosen]
        assert len(chosen) == 1 and isinstance(chosen[0], calibd.Candidate)
        assert chosen[0].certification.begin.isoformat() == "2026-03-01T00:00:00+00:00"
        assert sel.frame_time.year == 2026
        # Strict without a flat: the trail says why, with the code.
        sel = c.select(light, DETECTOR, kinds=["flat"])
        (entry,) = sel.trail
        assert entry.outcome == "miss"
        assert entry.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        # Nothing certified for the dark: the nearest policy takes the nearest matching version.
        c.build("dark", kind_files(samples, "dark"), detector=DETECTOR)
        strict = c.select(light, DETECTOR, kinds=["dark"])
        assert strict.trail[0].outcome == "miss" and not strict.masters
        sel = c.select(light, DETECTOR, kinds=["dark"], policy="nearest", max_age=86400)
        assert [(m.kind, m.outcome) for m in sel.masters] == [("dark", "nearest")]
        # A pin wins over certification.
        sel = c.select(light, DETECTOR, kinds=["bias"], pins={"bias": 1})
        assert sel.masters[0].outcome == "pinned"


def test_list_masters_pages_the_same_as_one_page(store_server, samples):
    with calibd.Client(store_server.address) as c:
        c.build("dark", kind_files(samples, "dark"), detector=DETECTOR, certify_from=NIGHT)
        c.build("bias", kind_files(samples, "bias")[:3], detector=DETECTOR)
        everything = c.list_masters()
        calls = []
        real = c._store.ListMasters

        def counting(request, **kw):
            calls.append((request.page_size, request.page_token)
                         if _requests.has_paging(type(request)) else (1, ""))
            return real(request, **kw)

        c._store.ListMasters = counting
        paged = c.list_masters(page_size=1)
        c._store.ListMasters = real
        # page_size is sent; the first request has no token, every later one the previous
        # response's (a server that does not page yet answers everything at once).
        assert all(size == 1 for size, _ in calls)
        assert calls[0][1] == "" and all(token for _, token in calls[1:])
        h = c.history(DETECTOR, "bias", page_size=1)
        assert [v.version for v in h.versions] == [1, 2]
        assert [(v.kind, v.version) for v in everything] == [("bias", 1), ("bias", 2),
                                                               ("dark", 1)]
        assert [v.sha256 for v in paged] == [v.sha256 for v in everything]
        assert [v.version for v in c.list_masters(kind="bias")] == [1, 2]
        assert c.list_masters(detector="nope/none") == []
        assert everything[2].certifications[0].end is None


def test_build_options_and_stored_inputs(store_server, samples):
    with calibd.Client(store_server.address) as c:
        b = c.build("bias", kind_files(samples, "bias"), detector=DETECTOR, method="average",
                    sigma_clip=True, sigma_clip_low_thresh=5, sigma_clip_high_thresh=5,
                    sigma_clip_func="mean", maxiters=1, attributes={"night": "2026-03-01"})
        assert b.version.version == 2 and b.inputs == 5
        assert b.version.attributes["night"] == "2026-03-01"
        assert b.version.provenance["options"]  # the combine options as text
        rebuilt = c.build("bias", [calibd.Stored("bias", 1), calibd.Stored("bias", 2)],
                          detector=DETECTOR, method="mean")
        assert rebuilt.inputs == 2
        with pytest.raises(calibd.InvalidArgument):
            c.build("bias", kind_files(samples, "bias"), detector=DETECTOR, method="mode")
        with pytest.raises(calibd.InvalidArgument):
            c.build("bias", kind_files(samples, "bias"), detector=DETECTOR, scale=np.median)
        with pytest.raises(calibd.NotFound):
            c.build("bias", kind_files(samples, "bias"), detector="nope/none")


def test_detectors_and_dq_bits(store_server, samples):
    with calibd.Client(store_server.address) as c:
        (d,) = c.detectors()
        assert d["name"] == DETECTOR and d["width"] == 144 and d["version"] == 1
        assert d["configuration_keys"] == {"default": [], "flat": ["filter"]}
        assert c.get_detector(DETECTOR)["gain"] == 1.5
        bits = {b.name: b.bit for b in c.dq_bits(DETECTOR)}
        assert bits["saturated"] == 8 and bits["low_flat"] == 256
        with pytest.raises(calibd.InvalidArgument):
            c.put_detector({"name": "x/y", "widht": 3})
