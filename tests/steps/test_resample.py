"""resample: output grid and drizzled arrays against the official engine (stcal
``wcs_from_sregions`` and ``Resample`` on the same inputs), flux conservation, kernels,
weights, rotation, scale ratio, many inputs with CON bits."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal.errors import WebbcalError
from webbcal import dqflags
from webbcal.resample import Resampler, ResampleInput, build_output_grid
from webbcal.resample.grid import footprint_from_sregion
from webbcal.steps import assign_wcs, resample
from webbcal.steps.image_model import CalImage, match_nans_and_flags
from webbcal.wcs.apertures import aperture
from webbcal.wcs.distortion import detector_to_v2v3_model

SHAPE = (90, 110)


@pytest.fixture(scope="module")
def distortion():
    return detector_to_v2v3_model(aperture("NRCA1"))


def make_image(distortion, seed=0, ra=53.16, dec=-27.79, roll=71.3, stars=True) -> CalImage:
    h = fits.Header()
    for k, v in {"DETECTOR": "NRCA1", "FILTER": "F150W", "PUPIL": "CLEAR", "EXP_TYPE": "NRC_IMAGE",
                 "RA_REF": ra, "DEC_REF": dec, "ROLL_REF": roll, "V2_REF": 120.6, "V3_REF": -527.38,
                 "V3I_YANG": -0.55, "VPARITY": -1, "SUBSTRT1": 901, "SUBSTRT2": 1001,
                 "EFFEXPTM": 100.0, "TMEASURE": 90.3, "PROGRAM": "01234", "OBSERVTN": "001", "VISIT": "001",
                 "VISITGRP": "02", "SEQ_ID": "1", "ACT_ID": "01", "EXPOSURE": f"{seed + 1:05d}",
                 "EXPSTART": 60000.0 + seed, "EXPEND": 60000.01 + seed}.items():
        h[k] = v
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    data = np.full(SHAPE, 0.1, np.float32) + rng.normal(0, 0.01, SHAPE).astype(np.float32)
    if stars:
        for x0, y0, f in ((30.3, 40.7, 50.0), (70.6, 20.2, 20.0), (85.1, 70.9, 35.0)):
            data += (f / (2 * np.pi * 1.5**2) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.5**2))).astype(np.float32)
    vr = rng.uniform(0.5e-4, 1.5e-4, SHAPE).astype(np.float32)
    vp = rng.uniform(0.5e-4, 1e-4, SHAPE).astype(np.float32)
    vf = rng.uniform(1e-6, 2e-6, SHAPE).astype(np.float32)
    dq = np.zeros(SHAPE, np.uint32)
    dq[rng.integers(0, SHAPE[0], 30), rng.integers(0, SHAPE[1], 30)] = dqflags.DO_NOT_USE
    image = CalImage(data=data, err=np.sqrt(vr + vp + vf), dq=dq, meta=h, var_poisson=vp, var_rnoise=vr,
                     var_flat=vf, bunit="MJy/sr")
    match_nans_and_flags(image)
    image.wcs = assign_wcs.imaging_wcs(h, distortion, None, SHAPE)
    image.meta["S_REGION"] = assign_wcs.s_region(image.wcs)
    image.meta["PIXAR_SR"] = (0.031 / 206264.806) ** 2
    return image


def pixel_solid_angle(wcs, x, y):
    """deg² of the input pixel at (x, y): cross product of its sky steps (tangent plane)."""
    ra, dec = wcs(np.array([x, x + 1, x]), np.array([y, y, y + 1]))
    east = (ra[1:] - ra[0]) * np.cos(np.deg2rad(dec[0]))
    north = dec[1:] - dec[0]
    return abs(east[0] * north[1] - east[1] * north[0])


def params(**overrides):
    return {**resample.SPEC.defaults(), **overrides}


def stcal_model(image):
    return {"data": image.data, "dq": image.dq, "var_rnoise": image.var_rnoise, "var_poisson": image.var_poisson,
            "var_flat": image.var_flat, "err": image.err, "filename": "x", "group_id": image.meta["EXPOSURE"],
            "wcs": image.wcs, "exposure_time": 100.0, "start_time": 60000.0, "end_time": 60000.01,
            "duration": 100.0, "measurement_time": 90.3, "pixelarea_steradians": image.meta["PIXAR_SR"],
            "level": None, "subtracted": False}


@pytest.mark.parametrize("opts", [{}, {"rotation": 0.0, "pixel_scale_ratio": 0.7}])
def test_output_grid_matches_stcal(distortion, opts):
    from stcal.alignment.util import wcs_from_sregions

    images = [make_image(distortion, 0), make_image(distortion, 1, ra=53.1603, dec=-27.7898)]
    grid = resample.output_grid(images, params(**opts))
    ref = images[0].meta
    wcsinfo = {"v3yangle": ref["V3I_YANG"], "vparity": ref["VPARITY"], "roll_ref": ref["ROLL_REF"],
               "ra_ref": ref["RA_REF"], "dec_ref": ref["DEC_REF"]}
    official = wcs_from_sregions([im.meta["S_REGION"] for im in images], images[0].wcs, wcsinfo,
                                 pscale_ratio=opts.get("pixel_scale_ratio", 1.0), rotation=opts.get("rotation"))
    assert grid.shape == official.array_shape
    y, x = np.mgrid[0:grid.shape[0]:13, 0:grid.shape[1]:17].astype(float)
    np.testing.assert_allclose(np.array(grid.wcs(x, y)), np.array(official(x, y)), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kernel,weight_type,pixfrac", [("square", "ivm", 1.0), ("turbo", "exptime", 0.6),
                                                         ("point", "ivm", 1.0), ("gaussian", "ivm", 0.8),
                                                         ("lanczos3", "exptime", 1.0)])
def test_arrays_match_stcal_resample(distortion, kernel, weight_type, pixfrac):
    from stcal.resample import Resample

    images = [make_image(distortion, 0), make_image(distortion, 1, ra=53.1603, dec=-27.7898)]
    p = params(kernel=kernel, weight_type=weight_type, pixfrac=pixfrac)
    grid = resample.output_grid(images, p)
    ours = Resampler(grid, kernel=kernel, pixfrac=pixfrac, weight_type=weight_type, n_inputs=2)
    official = Resample({"wcs": grid.wcs, "pixel_scale_ratio": 1.0}, n_input_models=2, pixfrac=pixfrac,
                        kernel=kernel, fillval="NAN", weight_type=weight_type, good_bits="~1+512",
                        enable_ctx=True, enable_var=True, compute_err="from_var")
    for image in images:
        ours.add(ResampleInput.from_image(image))
        official.add_model(stcal_model(image))
    result = ours.finalize()
    official.finalize()
    out = official.output_model
    np.testing.assert_array_equal(result.data, out["data"])
    np.testing.assert_array_equal(result.wht, out["wht"])
    np.testing.assert_array_equal(result.con, out["con"])
    for name in ("var_rnoise", "var_poisson", "var_flat"):
        np.testing.assert_array_equal(result.variances[name], out[name])
    np.testing.assert_array_equal(result.err, out["err"])


def test_flux_is_conserved_and_context_marks_inputs(distortion):
    images = [make_image(distortion, k, ra=53.16 + 0.00002 * k, stars=True) for k in range(3)]
    for image in images:  # no holes, no sky: pure sources
        image.data = np.nan_to_num(image.data - 0.1, nan=0.0)
        image.data[image.data < 0.05] = 0.0
        image.dq[:] = 0
    grid = resample.output_grid(images, params())
    for k, image in enumerate(images):
        single = Resampler(grid, n_inputs=1, enable_var=False, enable_err=False, weight_type="exptime")
        single.add(ResampleInput.from_image(image))
        out = single.finalize()
        in_area = pixel_solid_angle(image.wcs, 60.0, 45.0)
        ratio = np.nansum(out.data) * grid.pscale**2 / (np.sum(image.data) * in_area)
        assert ratio == pytest.approx(1.0, abs=0.002)
    both = Resampler(grid, n_inputs=3, enable_var=False, enable_err=False)
    for image in images:
        both.add(ResampleInput.from_image(image))
    out = both.finalize()
    assert out.con.shape == (1, *grid.shape)
    assert set(np.unique(out.con)) <= {0, 1, 2, 3, 4, 5, 6, 7}
    assert (out.con == 7).sum() > 0.5 * out.con.size


def test_scale_ratio_and_rotation_change_the_grid(distortion):
    image = make_image(distortion)
    base = resample.output_grid([image], params())
    half = resample.output_grid([image], params(pixel_scale_ratio=0.5))
    assert half.pscale == pytest.approx(base.pscale / 2, rel=1e-12)
    assert half.shape[0] == pytest.approx(2 * base.shape[0], abs=2)
    north = resample.output_grid([image], params(rotation=0.0))
    # North up: +Y of the output is +Dec
    r0, d0 = north.wcs(10.0, 10.0)
    r1, d1 = north.wcs(10.0, 20.0)
    assert d1 > d0 and abs(r1 - r0) * np.cos(np.deg2rad(d0)) < 1e-9
    fixed = resample.output_grid([image], params(output_shape="50,40", crpix="24.5,19.5",
                                                 crval="53.16,-27.79"))
    assert fixed.shape == (40, 50)
    assert np.allclose(fixed.wcs(24.5, 19.5), (53.16, -27.79), atol=1e-10)


def test_single_exposure_i2d_product(distortion):
    image = make_image(distortion)
    product = resample.resample_images([image], params())
    assert product.meta["S_RESAMP"] == "COMPLETE" and product.meta["NDRIZ"] == 1
    assert "V2_REF" not in product.meta and product.meta["CTYPE1"] == "RA---TAN"
    assert product.meta["EFFEXPTM"] == 100.0
    assert set(product.arrays) == {"SCI", "ERR", "CON", "WHT", "VAR_RNOISE", "VAR_POISSON", "VAR_FLAT"}
    footprint = footprint_from_sregion(product.meta["S_REGION"])
    assert footprint.shape == (4, 2)
    grid_again = build_output_grid([footprint_from_sregion(image.meta["S_REGION"])], image.wcs, image.meta)
    assert grid_again.shape == product.arrays["SCI"].shape


def test_propagate_dq_writes_the_or_of_contributing_pixels(distortion):
    image = make_image(distortion)
    image.dq[40:43, 50:53] |= dqflags.JUMP_DET  # flagged but usable
    product = resample.resample_images([image], params(propagate_dq=True))
    dq = product.arrays["DQ"]
    assert dq.dtype == np.uint32 and dq.shape == product.arrays["SCI"].shape
    assert np.count_nonzero(dq & dqflags.JUMP_DET) >= 9
    assert "DQ" not in resample.resample_images([image], params()).arrays


def test_inputs_streamed_from_files_give_the_same_mosaic(distortion, tmp_path):
    """Image3 path: cal files added one at a time from disk equal the in-memory result."""
    from webbcal.io.product import write_product

    images = [make_image(distortion, k, ra=53.16 + 0.00003 * k) for k in range(3)]
    grid = resample.output_grid(images, params())
    in_memory = Resampler(grid, n_inputs=3)
    streamed = Resampler(grid, n_inputs=3)
    for k, image in enumerate(images):
        in_memory.add(ResampleInput.from_image(image))
        path = write_product(image.to_product(), tmp_path / f"in{k}_cal.fits")
        streamed.add_file(path)
    a, b = in_memory.finalize(), streamed.finalize()
    np.testing.assert_allclose(a.data, b.data, rtol=3e-7, equal_nan=True)
    np.testing.assert_array_equal(a.con, b.con)
    np.testing.assert_allclose(a.err, b.err, rtol=3e-7, equal_nan=True)
    assert b.ninputs == 3 and len(b.group_ids) == 3


def test_output_wcs_file_defines_the_grid(distortion, tmp_path):
    import asdf

    image = make_image(distortion)
    grid = resample.output_grid([image], params(pixel_scale_ratio=0.8))
    path = tmp_path / "grid.asdf"
    asdf.AsdfFile({"wcs": grid.wcs}).write_to(path)
    again = resample.output_grid([image], params(output_wcs=str(path)))
    assert again.shape == grid.shape
    assert again.pscale == pytest.approx(grid.pscale, rel=1e-9)
    product = resample.resample_images([image], params(output_wcs=str(path)))
    assert product.meta["PXSCLRT"] == pytest.approx(0.8, rel=0.01)  # from PIXAR_SR, as officially


def test_single_input_variances_equal_the_general_sums(distortion):
    image = make_image(distortion)
    grid = resample.output_grid([image], params())
    single = Resampler(grid, n_inputs=1)
    general = Resampler(grid, n_inputs=None)
    for r in (single, general):
        r.add(ResampleInput.from_image(image))
    a, b = single.finalize(), general.finalize()
    for name in a.variances:
        np.testing.assert_array_equal(a.variances[name], b.variances[name])
    np.testing.assert_array_equal(a.err, b.err)
    with pytest.raises(Exception, match="one input"):
        one = Resampler(grid, n_inputs=1)
        one.add(ResampleInput.from_image(image))
        one.add(ResampleInput.from_image(image))


def test_output_too_large_for_memory_stops_before_allocating(distortion):
    image = make_image(distortion)
    # 200000 x 200000 px needs ~1.3 TB of accumulators: refused, nothing allocated
    with pytest.raises(WebbcalError, match=r"200000 x 200000 px needs .* GB.*allowed_memory") as info:
        resample.output_grid([image], params(output_shape="200000,200000"))
    assert info.value.path == "resample.allowed_memory"


def test_allowed_memory_is_a_fraction_of_what_is_available():
    shape, defaults = (1000, 2000), params()
    needed = resample.output_bytes(shape, 3, defaults)
    # SCI, WHT, one CON plane, 3 variance sums + weights, ERR, and the one-pass drizzle's
    # 3 fresh variance planes + their weight: 56 bytes per output pixel
    assert needed == 1000 * 2000 * 56
    resample.check_output_memory(shape, 3, defaults, available=needed)            # fits exactly
    with pytest.raises(WebbcalError, match="more than 0.5 of"):
        resample.check_output_memory(shape, 3, params(allowed_memory=0.5), available=needed)
    # 33 inputs need a second CON plane
    assert resample.output_bytes(shape, 33, defaults) - needed == 1000 * 2000 * 4


def test_sparse_pixel_map_matches_the_exact_one_on_a_full_frame(distortion):
    """The Image2/Image3 default (map every 10 px + cubic splines) against every pixel
    through both gwcs objects: a full-frame NRCA1 with its distortion, onto its own grid."""
    from webbcal.resample.pixmap import pixel_map

    h = make_image(distortion).meta.copy()
    h["SUBSTRT1"], h["SUBSTRT2"] = 1, 1
    shape = (2048, 2048)
    wcs = assign_wcs.imaging_wcs(h, distortion, None, shape)
    image = CalImage(data=np.zeros(shape, np.float32), err=np.zeros(shape, np.float32),
                     dq=np.zeros(shape, np.uint32), meta=h)
    image.wcs = wcs
    image.meta["S_REGION"] = assign_wcs.s_region(wcs)
    grid = resample.output_grid([image], params())
    exact = pixel_map(wcs, grid.wcs, shape)
    sparse = pixel_map(wcs, grid.wcs, shape, 10.0, 3)
    assert np.isfinite(exact).all()
    assert np.abs(sparse - exact).max() < 1e-6  # pixels
    linear = pixel_map(wcs, grid.wcs, shape, 10.0, 1)
    assert np.abs(linear - exact).max() > 10 * np.abs(sparse - exact).max()  # the cubic spline earns its keep


def _plane_by_plane(monkeypatch, build):
    """What ``build()`` returns when the one-pass C drizzle is not available."""
    from webbcal.resample import drizzler

    with monkeypatch.context() as patch:
        patch.setattr(drizzler.square, "available", lambda: False)
        return build()


def _assert_same_result(a, b):
    for name in ("data", "wht", "con", "err"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in b.variances:
        np.testing.assert_array_equal(a.variances[name], b.variances[name], err_msg=name)


@pytest.mark.parametrize("weight_type,pixfrac", [("ivm", 1.0), ("exptime", 0.7)])
def test_one_pass_drizzle_equals_drizzle_plane_by_plane(distortion, monkeypatch, weight_type, pixfrac):
    from webbcal.resample import drizzler

    if not drizzler.square.available():  # installed without a C compiler
        pytest.skip("the C extension webbcal.resample._square was not built")
    # 34 inputs: two context planes, bit 31 set. On the grid of some of them the others
    # stick out of it; the grid cut to 100x80 pixels has every input leaving it.
    images = [make_image(distortion, k, ra=53.16 + 0.00025 * (k % 5) - 0.0005, dec=-27.79 + 0.0002 * (k % 3))
              for k in range(34)]
    full = resample.output_grid(images, params())
    part = resample.output_grid([im for k, im in enumerate(images) if k % 5 < 3 and k % 3 < 2], params())
    cut = resample.output_grid(images[:1], params(output_shape="100,80"))
    one_pass_calls = []
    original = drizzler.square.add_image
    monkeypatch.setattr(drizzler.square, "add_image",
                        lambda *a, **k: (one_pass_calls.append(1), original(*a, **k))[1])

    def build(grid):
        def run():
            r = Resampler(grid, weight_type=weight_type, pixfrac=pixfrac, n_inputs=len(images))
            for image in images:
                r.add(ResampleInput.from_image(image))
            return r.finalize()
        return run

    for grid in (full, part, cut):
        one_pass_calls.clear()
        result = build(grid)()
        assert len(one_pass_calls) == len(images)  # inputs leaving the grid included
        expected = _plane_by_plane(monkeypatch, build(grid))
        assert result.con.shape[0] == 2 and (result.con[0] < 0).any()  # bit 31 of plane 0
        _assert_same_result(result, expected)


def test_one_pass_single_input_equals_drizzle(distortion, monkeypatch):
    image = make_image(distortion)
    grid = resample.output_grid([image], params())

    def run():
        r = Resampler(grid, n_inputs=1)
        r.add(ResampleInput.from_image(image))
        return r.finalize()

    _assert_same_result(run(), _plane_by_plane(monkeypatch, run))
