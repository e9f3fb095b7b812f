"""``webbcal.resample.square`` against drizzle's own square kernel, plane by plane.

The reference is what ``webbcal.resample.drizzler`` does today: one persistent
``Drizzle`` for SCI (three inputs accumulating, context bits 1<<0..1<<2) and, per
input, one fresh ``Drizzle`` per extra plane (fill NaN). Every output must be
bit-identical (NaN where drizzle has NaN).
"""

from __future__ import annotations

import numpy as np
import pytest
from drizzle.resample import Drizzle

from webbcal.resample import square

pytestmark = pytest.mark.skipif(not square.available(), reason="_square extension not built")

IN_SHAPE = (280, 300)   # (ny, nx)
OUT_SHAPE = (330, 340)
N_EXTRA = 3


def make_pixmap(in_shape, out_shape, angle_deg, shift=(0.0, 0.0), scale=1.0, distortion=0.0):
    """Rotation about the input centre onto the output centre, plus shift and a mild
    quadratic distortion (in output pixels at the input's edge)."""
    ny, nx = in_shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    u, v = (x - (nx - 1) / 2) / nx, (y - (ny - 1) / 2) / ny
    a = np.deg2rad(angle_deg)
    dx, dy = x - (nx - 1) / 2, y - (ny - 1) / 2
    xo = scale * (np.cos(a) * dx - np.sin(a) * dy) + (out_shape[1] - 1) / 2 + shift[0]
    yo = scale * (np.sin(a) * dx + np.cos(a) * dy) + (out_shape[0] - 1) / 2 + shift[1]
    xo += distortion * (u * u + 0.5 * u * v)
    yo += distortion * (v * v - 0.3 * u * v)
    return np.dstack([xo, yo])


def make_input(rng, in_shape):
    """SCI, weights (20 % zero, SCI NaN at some of those) and the extra planes."""
    data = rng.normal(10.0, 3.0, in_shape).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, in_shape).astype(np.float32)
    zero = rng.random(in_shape) < 0.2
    weights[zero] = 0.0
    data[zero & (rng.random(in_shape) < 0.5)] = np.nan  # Image2: NaN SCI where DO_NOT_USE
    extras = [rng.uniform(0.1, 5.0, in_shape).astype(np.float32) for _ in range(N_EXTRA)]
    extras[2][zero] = np.nan
    extras[1][5, 7] = np.nan  # a NaN with non-zero weight propagates in drizzle too
    weights[5, 7] = 1.0
    return data, weights, extras


def box_corners_in_output(pixmap):
    """Output (x, y) of the input box corners, by drizzle's bilinear extrapolation."""
    ny, nx = pixmap.shape[:2]
    corners = []
    for i0, j0, fx, fy in ((0, 0, -0.5, -0.5), (nx - 2, 0, 1.5, -0.5),
                           (0, ny - 2, -0.5, 1.5), (nx - 2, ny - 2, 1.5, 1.5)):
        p = pixmap[j0:j0 + 2, i0:i0 + 2]
        corners.append(p[0, 0] * (1 - fx) * (1 - fy) + p[0, 1] * fx * (1 - fy)
                       + p[1, 0] * (1 - fx) * fy + p[1, 1] * fx * fy)
    return np.array(corners)


def test_box_reaching_outside_is_not_supported():
    rng = np.random.default_rng(11)
    data, weights, extras = make_input(rng, IN_SHAPE)
    pixmap = make_pixmap(IN_SHAPE, OUT_SHAPE, 5.0)
    assert square.supports(pixmap, OUT_SHAPE)
    assert square.supports(pixmap, OUT_SHAPE, ymin=20)
    shifted = pixmap + [25.0, 0.0]   # the right edge now leaves the output frame
    assert not square.supports(shifted, OUT_SHAPE)
    assert square.supports(shifted, OUT_SHAPE, xmax=250)  # ...unless those columns are cut
    out_img = np.full(OUT_SHAPE, np.nan, np.float32)
    out_wht = np.zeros(OUT_SHAPE, np.float32)
    with pytest.raises(square.Unsupported):
        square.add_image(data, exptime=1.0, pixmap=shifted, out_img=out_img, out_wht=out_wht,
                         weight_map=weights)
    assert np.isnan(out_img).all() and not out_wht.any()  # untouched
    with pytest.raises(square.Unsupported):  # drizzle would switch to the point kernel
        square.add_image(data, exptime=1.0, pixmap=pixmap, out_img=out_img, out_wht=out_wht,
                         pixfrac=0.001)


def test_bad_arrays_are_refused():
    from webbcal.resample import _square

    data = np.ones((20, 30), np.float32)
    pixmap = make_pixmap(data.shape, (40, 40), 0.0)
    out = np.zeros((40, 40), np.float32)

    def call(**changes):
        args = dict(data=data, weights=None, pixmap=pixmap, out_data=out.copy(),
                    out_wht=out.copy(), out_ctx=None, ctx_bit=1, extra_data=[], extra_out=[],
                    extra_wht=None, xmin=0, xmax=29, ymin=0, ymax=19, pixfrac=1.0, iscale=1.0,
                    wtscale=1.0)
        args.update(changes)
        return _square.drizzle(**args)

    assert call() == (0 - 20, 0)  # drizzle's count: -1 per fully scanned row, no misses
    with pytest.raises(TypeError, match="float32"):
        call(data=data.astype(np.float64))
    with pytest.raises(TypeError, match="int32"):
        call(out_ctx=np.zeros((40, 40), np.int64))
    with pytest.raises(ValueError, match="shape"):
        call(weights=np.ones((20, 31), np.float32))
    with pytest.raises(TypeError, match="C-contiguous"):
        call(out_data=np.zeros((40, 80), np.float32)[:, ::2])
    with pytest.raises(TypeError, match="writable"):
        readonly = out.copy()
        readonly.flags.writeable = False
        call(out_wht=readonly)
    with pytest.raises(ValueError, match="extra_wht"):
        call(extra_data=[data], extra_out=[out.copy()], extra_wht=None)
    with pytest.raises(ValueError, match="too few valid"):
        call(pixmap=np.full_like(pixmap, np.nan))


def reference_extra(plane, common):
    """One fresh drizzle of an extra plane, as drizzler._resample_sqrt does it."""
    out_img = np.zeros(OUT_SHAPE, np.float32)
    out_wht = np.zeros(OUT_SHAPE, np.float32)
    driz = Drizzle(kernel="square", fillval=np.nan, out_img=out_img, out_wht=out_wht,
                   disable_ctx=True)
    driz.add_image(plane, **common)
    return driz.out_img, driz.out_wht


def assert_same(actual, expected, what):
    np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)


def run_both(inputs):
    """Drizzle every (data, weights, extras, common) input both ways and compare."""
    reference = Drizzle(kernel="square", fillval="NAN", out_shape=OUT_SHAPE, max_ctx_id=2)
    out_img = np.full(OUT_SHAPE, np.nan, np.float32)
    out_wht = np.zeros(OUT_SHAPE, np.float32)
    out_ctx = np.zeros(OUT_SHAPE, np.int32)
    for index, (data, weights, extras, common) in enumerate(inputs):
        counts = reference.add_image(data, weight_map=weights, **common)
        extra_out = [np.zeros(OUT_SHAPE, np.float32) for _ in extras]
        extra_wht = np.zeros(OUT_SHAPE, np.float32)
        ours = square.add_image(data, weight_map=weights, out_img=out_img, out_wht=out_wht,
                                out_ctx=out_ctx, ctx_bit=1 << index, extra_data=extras,
                                extra_out=extra_out, extra_wht=extra_wht, fillval="NAN",
                                extra_fillval=np.nan, **common)
        assert ours == counts, f"input {index}: (nmiss, nskip)"
        assert_same(out_img, reference.out_img, f"input {index}: out_img")
        assert_same(out_wht, reference.out_wht, f"input {index}: out_wht")
        assert_same(out_ctx, reference.out_ctx[0], f"input {index}: out_ctx")
        for k, plane in enumerate(extras):
            img, wht = reference_extra(plane, dict(common, weight_map=weights))
            assert_same(extra_out[k], img, f"input {index}: extra plane {k}")
            assert_same(extra_wht, wht, f"input {index}: extra_wht")
    return out_img, out_wht, out_ctx


@pytest.mark.parametrize("pixfrac", [1.0, 0.6])
def test_three_inputs_match_drizzle_plane_by_plane(pixfrac):
    rng = np.random.default_rng(42)
    geometries = [
        dict(angle_deg=5.0, shift=(1.3, -2.1), distortion=1.5),
        dict(angle_deg=-3.0, shift=(-0.4, 3.7), scale=1.02, distortion=-1.0),
        dict(angle_deg=8.5, shift=(2.2, 0.9), scale=0.97, distortion=2.0),
    ]
    limits = [{}, dict(xmin=11, xmax=287, ymin=3, ymax=260), dict(xmin=-5, ymin=40, xmax=900)]
    iscales = [1.0, 0.8, 1.3]
    inputs = []
    for index, geometry in enumerate(geometries):
        pixmap = make_pixmap(IN_SHAPE, OUT_SHAPE, **geometry)
        if index == 0:
            pixmap[100:120, 50:90] = np.nan  # a hole
            pixmap[:6, :9] = np.nan          # at the box corner: drizzle scans the whole box
        if index == 2:
            pixmap[:, -3:] = np.nan          # a dead edge shrinks the box
        data, weights, extras = make_input(rng, IN_SHAPE)
        common = dict(exptime=100.0 + index, pixmap=pixmap, pixel_scale_ratio=1.0,
                      iscale=iscales[index], wht_scale=1.0 if index != 1 else 0.7,
                      pixfrac=pixfrac, in_units="cps", **limits[index])
        inputs.append((data, weights, extras, common))
    out_img, out_wht, out_ctx = run_both(inputs)
    # the comparison is not vacuous: all three inputs landed, and empty pixels were filled
    assert set(np.unique(out_ctx)) >= {1, 3, 7}
    assert np.isnan(out_img[out_wht == 0]).all() and (out_wht == 0).any()
    assert np.isfinite(out_img[out_wht > 0]).mean() > 0.99


def test_counts_units_and_unit_weights():
    rng = np.random.default_rng(7)
    data, _, extras = make_input(rng, IN_SHAPE)
    data = np.nan_to_num(data)
    common = dict(exptime=250.0, pixmap=make_pixmap(IN_SHAPE, OUT_SHAPE, 7.0, distortion=1.0),
                  pixel_scale_ratio=1.0, iscale=1.0, wht_scale=1.0, pixfrac=0.8,
                  in_units="counts")
    run_both([(data, None, extras, common)])


def test_sweep_of_geometries_scans_the_whole_box():
    """Many rotations/scales with the box just inside the output: drizzle's own scanner
    (inverted polygon, scan-line limits) must visit exactly every pixel of the box."""
    rng = np.random.default_rng(3)
    for case in range(24):
        in_shape = (int(rng.integers(20, 40)), int(rng.integers(20, 40)))
        angle, scale = rng.uniform(0, 360), rng.uniform(0.7, 1.4)
        out_shape = (int(np.ceil(scale * np.hypot(*in_shape))) + 3,) * 2
        pixmap = make_pixmap(in_shape, out_shape, angle, scale=scale,
                             distortion=rng.uniform(-0.5, 0.5))
        if case % 3 == 0:  # tight: the box's lowest/leftmost corner 0.02 px inside the frame
            corners = box_corners_in_output(pixmap)
            pixmap -= corners.min(axis=0) + 0.5 - 0.02
        assert square.supports(pixmap, out_shape), case
        data = rng.normal(size=in_shape).astype(np.float32)
        common = dict(exptime=1.0, pixmap=pixmap, pixfrac=1.0 if case % 2 else rng.uniform(0.3, 1))
        driz = Drizzle(kernel="square", out_shape=out_shape)
        counts = driz.add_image(data, **common)
        out_img = np.full(out_shape, np.nan, np.float32)
        out_wht = np.zeros(out_shape, np.float32)
        out_ctx = np.zeros(out_shape, np.int32)
        ours = square.add_image(data, out_img=out_img, out_wht=out_wht, out_ctx=out_ctx,
                                **common)
        assert ours == counts, case
        assert_same(out_img, driz.out_img, f"case {case}")
        assert_same(out_wht, driz.out_wht, f"case {case}")
        assert_same(out_ctx, driz.out_ctx[0], f"case {case}")
