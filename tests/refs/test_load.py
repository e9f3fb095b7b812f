"""load_reference: identity checks, DQ_DEF expansion and subarray cuts vs the official code."""

from __future__ import annotations

import types

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.refs import get_references, load_reference, write_reference

from .conftest import USEAFTER, image_meta, science_header

REF_NY, REF_NX = 48, 64


def _subarray_ref(tmp_path, reftype="flat", xstart=1, ystart=1, **extra):
    rng = np.random.default_rng(11)
    sci = rng.normal(1, 0.05, (REF_NY, REF_NX)).astype("f4")
    dq = (rng.random((REF_NY, REF_NX)) < 0.05).astype(np.uint32) * (dqflags.HOT | dqflags.DO_NOT_USE)
    arrays = {"SCI": sci, "ERR": sci * 0.1, "DQ": dq}
    meta = image_meta(SUBSTRT1=xstart, SUBSTRT2=ystart, FILTER="F200W", PUPIL="CLEAR", **extra)
    return write_reference(tmp_path / f"{reftype}.fits", reftype, meta, arrays=arrays), arrays


def _official_cut(ref_path, sci_corner, sci_size):
    from jwst.lib import reffile_utils
    from stdatamodels.jwst import datamodels

    sci = datamodels.ImageModel(np.zeros(sci_size[::-1], "f4"))
    sci.meta.instrument.name = "NIRCAM"
    sci.meta.subarray.xstart, sci.meta.subarray.ystart = sci_corner
    sci.meta.subarray.xsize, sci.meta.subarray.ysize = sci_size
    ref = datamodels.open(str(ref_path))
    if reffile_utils.ref_matches_sci(sci, ref):
        return ref
    return reffile_utils.get_subarray_model(sci, ref)


@pytest.mark.parametrize("ref_corner,sci_corner,sci_size", [
    ((1, 1), (11, 5), (20, 16)),
    ((101, 201), (101, 201), (64, 48)),      # identical: no cut
    ((101, 201), (140, 230), (25, 19)),      # reference itself a subarray
    ((1, 1), (45, 33), (20, 16)),            # touches the far corner
])
def test_subarray_cut_matches_reffile_utils(tmp_path, ref_corner, sci_corner, sci_size):
    path, _ = _subarray_ref(tmp_path, xstart=ref_corner[0], ystart=ref_corner[1])
    header = science_header(SUBARRAY="SUB160", SUBSTRT1=sci_corner[0], SUBSTRT2=sci_corner[1],
                            SUBSIZE1=sci_size[0], SUBSIZE2=sci_size[1])
    ours = load_reference(path, "flat", header)
    official = _official_cut(path, sci_corner, sci_size)
    np.testing.assert_array_equal(ours.arrays["SCI"], official.data)
    np.testing.assert_array_equal(ours.arrays["ERR"], official.err)
    np.testing.assert_array_equal(ours.arrays["DQ"], official.dq)
    assert ours.arrays["SCI"].shape == (sci_size[1], sci_size[0])
    assert (ours.meta["SUBSTRT1"], ours.meta["SUBSIZE2"]) == (sci_corner[0], sci_size[1])


def test_cut_outside_the_reference_is_an_error(tmp_path):
    path, _ = _subarray_ref(tmp_path, xstart=101, ystart=201)
    header = science_header(SUBARRAY="SUB160", SUBSTRT1=150, SUBSTRT2=201, SUBSIZE1=20, SUBSIZE2=16)
    with pytest.raises(WebbcalError) as info:
        load_reference(path, "flat", header)
    assert "does not contain the exposure's x 150..169" in str(info.value)
    assert str(info.value).startswith(str(path))
    # the official code refuses it too

    with pytest.raises(ValueError):
        _official_cut(path, (150, 201), (20, 16))


def test_actual_array_size_wins_over_subsize(tmp_path):
    path, arrays = _subarray_ref(tmp_path)
    with fits.open(path, mode="update") as hdul:  # keywords that lie about the size
        hdul[0].header["SUBSIZE1"] = 2048
        hdul[0].header["SUBSIZE2"] = 2048
    header = science_header(SUBARRAY="SUB160", SUBSTRT1=50, SUBSTRT2=1, SUBSIZE1=20, SUBSIZE2=16)
    with pytest.raises(WebbcalError, match="does not contain"):
        load_reference(path, "flat", header)
    # and the exposure's actual shape wins over its keywords
    header = science_header(SUBARRAY="SUB160", SUBSTRT1=3, SUBSTRT2=2, SUBSIZE1=999, SUBSIZE2=999)
    cut = load_reference(path, "flat", header, sci_shape=(2, 5, 16, 20))
    np.testing.assert_array_equal(cut.arrays["SCI"], arrays["SCI"][1:17, 2:22])


def test_dark_is_never_cut(tmp_path):
    dark = np.arange(3 * REF_NY * REF_NX, dtype="f4").reshape(3, REF_NY, REF_NX)
    meta = image_meta(EXP_TYPE="NRC_IMAGE", NOUTPUTS=4, NFRAMES=1, GROUPGAP=0)
    path = write_reference(tmp_path / "dark.fits", "dark", meta, arrays={"SCI": dark})
    exact = science_header(SUBARRAY="SUB160", SUBSTRT1=1, SUBSTRT2=1, SUBSIZE1=REF_NX, SUBSIZE2=REF_NY)
    np.testing.assert_array_equal(load_reference(path, "dark", exact).arrays["SCI"], dark)
    smaller = science_header(SUBARRAY="SUB160", SUBSTRT1=1, SUBSTRT2=1, SUBSIZE1=20, SUBSIZE2=16)
    with pytest.raises(WebbcalError, match="never cut"):
        load_reference(path, "dark", smaller)


def test_ipc_4d_kernel_is_cut_2d_kernel_is_not(tmp_path):
    kernel4 = np.random.default_rng(2).random((3, 3, REF_NY, REF_NX)).astype("f4")
    path4 = write_reference(tmp_path / "ipc4.fits", "ipc", image_meta(), arrays={"SCI": kernel4})
    assert fits.getheader(path4)["SUBSIZE1"] == REF_NX  # per-pixel kernels carry their footprint
    header = science_header(SUBARRAY="SUB160", SUBSTRT1=5, SUBSTRT2=7, SUBSIZE1=20, SUBSIZE2=16)
    np.testing.assert_array_equal(load_reference(path4, "ipc", header).arrays["SCI"], kernel4[..., 6:22, 4:24])
    kernel2 = np.full((3, 3), 0.01, "f4")
    path2 = write_reference(tmp_path / "ipc2.fits", "ipc", image_meta(), arrays={"SCI": kernel2})
    np.testing.assert_array_equal(load_reference(path2, "ipc", header).arrays["SCI"], kernel2)


def _raw_mask_with_dq_def(path, raw_dq, dq_def_rows):
    """A mask written with plain astropy: raw file bits and a hand-made DQ_DEF."""
    primary = fits.PrimaryHDU()
    for key, value in {"REFTYPE": "MASK", "DATAMODL": "MaskModel", "TELESCOP": "JWST", "INSTRUME": "NIRCAM",
                       "DETECTOR": "NRCA1", "USEAFTER": USEAFTER, "SUBARRAY": "GENERIC", "SUBSTRT1": 1, "SUBSTRT2": 1,
                       "SUBSIZE1": raw_dq.shape[1], "SUBSIZE2": raw_dq.shape[0]}.items():
        primary.header[key] = value
    table = np.array(dq_def_rows, dtype=[("BIT", ">i4"), ("VALUE", ">u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")])
    fits.HDUList([primary, fits.ImageHDU(raw_dq, name="DQ"), fits.BinTableHDU(table, name="DQ_DEF")]).writeto(path)
    return table


def test_dq_def_expansion_matches_dynamic_mask(tmp_path):
    from stdatamodels.dynamicdq import dynamic_mask
    from stdatamodels.jwst import datamodels
    from stdatamodels.jwst.datamodels import dqflags as official_flags

    rng = np.random.default_rng(3)
    raw = rng.integers(0, 64, (REF_NY, REF_NX)).astype(np.uint32)
    rows = [(0, 1, "DO_NOT_USE", "bad"), (1, 2, "DEAD", "dead"), (2, 4, "HOT", "hot"),
            (3, 8, "WARM", "warm"), (4, 16, "NOT_A_FLAG", "unknown: ignored"), (5, 32, "LOW_QE", "low qe")]
    path = tmp_path / "mask.fits"
    _raw_mask_with_dq_def(path, raw, rows)
    table = fits.getdata(path, "DQ_DEF")  # as the official reader sees it (str names)
    oracle = dynamic_mask(types.SimpleNamespace(dq=raw, dq_def=table), official_flags.pixel)
    with datamodels.open(str(path)) as model:
        np.testing.assert_array_equal(model.dq, oracle)  # what the official open does too
    ours = load_reference(path, "mask", science_header(SUBARRAY="GENERIC", SUBSIZE1=REF_NX, SUBSIZE2=REF_NY))
    np.testing.assert_array_equal(ours.arrays["DQ"], oracle)
    assert ours.arrays["DQ"][raw == 16].max() == 0  # the unknown flag vanished
    assert np.all(ours.arrays["DQ"][(raw & 2) != 0] & dqflags.DEAD)


def test_identity_checks(every_type, tmp_path):
    header = science_header(SUBARRAY="GENERIC", SUBSIZE1=24, SUBSIZE2=16)
    with pytest.raises(WebbcalError, match="is a gain, not a readnoise reference"):
        load_reference(every_type["gain"], "readnoise", header)
    with pytest.raises(WebbcalError, match="is for DETECTOR NRCA1, the exposure is NRCB3"):
        load_reference(every_type["gain"], "gain", science_header(DETECTOR="NRCB3"))
    bad = tmp_path / "junk.fits"
    bad.write_bytes(b"not a fits file at all")
    with pytest.raises(WebbcalError, match="neither a FITS nor an ASDF file"):
        load_reference(bad, "gain", header)
    with pytest.raises(WebbcalError, match="is a FITS file; distortion references are ASDF"):
        load_reference(every_type["gain"], "distortion", header)


def test_asdf_reference_loads_its_tree(every_type):
    product = load_reference(every_type["distortion"], "distortion", science_header())
    assert product.model == "DistortionModel"
    assert product.meta["DETECTOR"] == "NRCA1"
    x, y = product.tree["model"](1024, 1024)
    assert (x, y) == pytest.approx((0.0, 0.0))


def test_get_references_overrides_and_na(every_type, tmp_path):
    from webbcal.refs import RefCache

    cache = RefCache(tmp_path / "cache")
    cache.add(every_type["gain"])
    header = science_header(SUBARRAY="GENERIC", SUBSIZE1=24, SUBSIZE2=16)
    refs = get_references(["gain", "readnoise", "mask"], header, cache,
                          overrides={"readnoise": every_type["readnoise"], "mask": "N/A"})
    assert sorted(refs) == ["gain", "readnoise"]
    assert refs["readnoise"].path == every_type["readnoise"]
    assert refs["gain"].path == cache.root / "gain.fits"
    with pytest.raises(WebbcalError, match="is a gain, not a readnoise"):
        get_references(["readnoise"], header, cache, overrides={"readnoise": every_type["gain"]})


def test_full_frame_reference_without_subarray_keywords(tmp_path):
    """CRDS full-frame files may lack SUBSTRT/SUBSIZE: 2048x2048 means full frame."""
    gain = np.arange(2048 * 2048, dtype="f4").reshape(2048, 2048)
    path = write_reference(tmp_path / "gain.fits", "gain", {"DETECTOR": "NRCA1", "USEAFTER": USEAFTER}, arrays={"SCI": gain})
    with fits.open(path, mode="update") as hdul:
        for key in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2"):
            del hdul[0].header[key]
    header = science_header(SUBARRAY="SUB640", SUBSTRT1=1409, SUBSTRT2=1409, SUBSIZE1=640, SUBSIZE2=640)
    cut = load_reference(path, "gain", header).arrays["SCI"]
    np.testing.assert_array_equal(cut, gain[1408:, 1408:])


def test_per_pixel_ipc_validates_officially(tmp_path, monkeypatch):
    from stdatamodels.jwst import datamodels

    monkeypatch.setenv("STRICT_VALIDATION", "1")
    path = write_reference(tmp_path / "ipc4.fits", "ipc", image_meta(), arrays={"SCI": np.zeros((3, 3, 8, 8), "f4")})
    with datamodels.open(str(path)) as model:
        assert type(model).__name__ == "IPCModel" and model.data.shape == (3, 3, 8, 8)
        model.validate()
