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


def test_every_box_is_supported_only_the_point_kernel_is_not():
    rng = np.random.default_rng(11)
    data, weights, extras = make_input(rng, IN_SHAPE)
    shifted = make_pixmap(IN_SHAPE, OUT_SHAPE, 5.0) + [25.0, 0.0]  # the right edge sticks out
    assert square.handles("square", 1.0) and square.handles("square", 0.002)
    assert not square.handles("square", 0.001) and not square.handles("turbo", 1.0)
    out_img = np.full(OUT_SHAPE, np.nan, np.float32)
    out_wht = np.zeros(OUT_SHAPE, np.float32)
    with pytest.raises(square.Unsupported):  # drizzle would switch to the point kernel
        square.add_image(data, exptime=1.0, pixmap=shifted, out_img=out_img, out_wht=out_wht,
                         weight_map=weights, pixfrac=0.001)
    assert np.isnan(out_img).all() and not out_wht.any()  # untouched


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
    missing = call(pixmap=pixmap + 100.0, fill=-1.0, out_wht=np.zeros((40, 40), np.float32))
    assert missing == (0, 0)  # tdriz's counts when the input misses the output


def reference_extra(plane, common, out_shape=OUT_SHAPE):
    """One fresh drizzle of an extra plane, as drizzler._resample_sqrt does it."""
    out_img = np.zeros(out_shape, np.float32)
    out_wht = np.zeros(out_shape, np.float32)
    driz = Drizzle(kernel="square", fillval=np.nan, out_img=out_img, out_wht=out_wht,
                   disable_ctx=True)
    driz.add_image(plane, **common)
    return driz.out_img, driz.out_wht


def assert_same(actual, expected, what):
    np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)


def run_both(inputs, out_shape=OUT_SHAPE):
    """Drizzle every (data, weights, extras, common) input both ways and compare; returns
    our outputs and the list of (nmiss, nskip)."""
    reference = Drizzle(kernel="square", fillval="NAN", out_shape=out_shape,
                        max_ctx_id=max(len(inputs) - 1, 0))
    out_img = np.full(out_shape, np.nan, np.float32)
    out_wht = np.zeros(out_shape, np.float32)
    out_ctx = np.zeros(out_shape, np.int32)
    all_counts = []
    for index, (data, weights, extras, common) in enumerate(inputs):
        counts = reference.add_image(data, weight_map=weights, **common)
        all_counts.append(counts)
        extra_out = [np.zeros(out_shape, np.float32) for _ in extras]
        extra_wht = np.zeros(out_shape, np.float32)
        ours = square.add_image(data, weight_map=weights, out_img=out_img, out_wht=out_wht,
                                out_ctx=out_ctx, ctx_bit=1 << index, extra_data=extras,
                                extra_out=extra_out, extra_wht=extra_wht, fillval="NAN",
                                extra_fillval=np.nan, **common)
        assert ours == counts, f"input {index}: (nmiss, nskip)"
        assert_same(out_img, reference.out_img, f"input {index}: out_img")
        assert_same(out_wht, reference.out_wht, f"input {index}: out_wht")
        assert_same(out_ctx, reference.out_ctx[0], f"input {index}: out_ctx")
        for k, plane in enumerate(extras):
            img, wht = reference_extra(plane, dict(common, weight_map=weights), out_shape)
            assert_same(extra_out[k], img, f"input {index}: extra plane {k}")
            assert_same(extra_wht, wht, f"input {index}: extra_wht")
    return out_img, out_wht, out_ctx, all_counts


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
    out_img, out_wht, out_ctx, _ = run_both(inputs)
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


def drizzle_one_both_ways(data, out_shape, **common):
    """One input through a fresh Drizzle and through square.add_image; outputs must match."""
    driz = Drizzle(kernel="square", out_shape=out_shape)
    counts = driz.add_image(data, **common)
    out_img = np.full(out_shape, np.nan, np.float32)
    out_wht = np.zeros(out_shape, np.float32)
    out_ctx = np.zeros(out_shape, np.int32)
    ours = square.add_image(data, out_img=out_img, out_wht=out_wht, out_ctx=out_ctx, **common)
    assert ours == counts
    assert_same(out_img, driz.out_img, "out_img")
    assert_same(out_wht, driz.out_wht, "out_wht")
    assert_same(out_ctx, driz.out_ctx[0], "out_ctx")
    return counts, out_wht


def one_input(rng, pixmap, pixfrac=0.8, **limits):
    data, weights, extras = make_input(rng, pixmap.shape[:2])
    common = dict(exptime=1.0, pixmap=pixmap, pixel_scale_ratio=1.0, iscale=1.0,
                  wht_scale=1.0, pixfrac=pixfrac, in_units="cps", **limits)
    return data, weights, extras, common


SIDES = {"left": (-40, 0), "right": (40, 0), "bottom": (0, -40), "top": (0, 40),
         "lower left": (-40, -40), "lower right": (40, -40), "upper left": (-40, 40),
         "upper right": (40, 40)}


@pytest.mark.parametrize("side", SIDES)
def test_input_sticking_out_of_one_side_or_corner(side):
    rng = np.random.default_rng(len(side))
    pixmap = make_pixmap(IN_SHAPE, OUT_SHAPE, 5.0, shift=SIDES[side], distortion=1.5)
    corners = box_corners_in_output(pixmap)
    assert (corners < -0.5).any() or (corners > np.array(OUT_SHAPE[::-1]) - 0.5).any()
    pixfrac = 1.0 if " " in side else 0.7
    second = make_pixmap(IN_SHAPE, OUT_SHAPE, -3.0, shift=SIDES[side][::-1], scale=1.02)
    _, out_wht, _, counts = run_both([one_input(rng, pixmap, pixfrac),
                                      one_input(rng, second, pixfrac)])
    # some 20 of the ~300 columns/rows leave the frame: drizzle skips or misses them
    assert 0.7 * 280 * 300 < (out_wht > 0).sum() < 0.95 * 330 * 340
    assert counts[0][0] > 15 * 270


def test_output_cut_from_the_middle_of_the_inputs():
    """Every input box contains the small output frame: clipped on all four sides."""
    rng = np.random.default_rng(21)
    out_shape = (90, 120)
    inputs = [one_input(rng, make_pixmap(IN_SHAPE, out_shape, angle, shift=shift,
                                         distortion=2.0), pixfrac)
              for angle, shift, pixfrac in ((0.0, (0, 0), 1.0), (12.0, (3.3, -7.1), 0.6),
                                            (-7.0, (-10.2, 4.4), 0.9))]
    inputs[1][3].update(xmin=20, xmax=270, ymin=30, ymax=250)
    out_img, out_wht, _, counts = run_both(inputs, out_shape)
    assert (out_wht > 0).all() and np.isfinite(out_img).mean() > 0.99
    for nmiss, nskip in counts:  # over a third of the rows skipped, most pixels missed
        assert nskip > 100 and nmiss > 30000


@pytest.mark.parametrize("shift", [(-220.0, -200.0), (230.0, 190.0)])
def test_rotated_input_overlapping_a_corner(shift):
    rng = np.random.default_rng(4)
    pixmap = make_pixmap(IN_SHAPE, OUT_SHAPE, 30.0, shift=shift, scale=1.05, distortion=1.0)
    out_img, out_wht, _, counts = run_both([one_input(rng, pixmap, 0.75)])
    covered = (out_wht > 0).mean()
    assert 0.05 < covered < 0.4
    assert counts[0][1] > 0  # rows wholly outside are skipped


@pytest.mark.parametrize("shift", [(1000.0, 0.0), (0.0, -343.0), (-400.0, 600.0)])
def test_input_missing_the_output(shift):
    rng = np.random.default_rng(5)
    pixmap = make_pixmap(IN_SHAPE, OUT_SHAPE, 10.0, shift=shift)
    out_img, out_wht, out_ctx, counts = run_both([one_input(rng, pixmap)])
    assert counts == [(0, 0)]  # tdriz's answer: nothing scanned, nothing counted
    assert np.isnan(out_img).all() and not out_wht.any() and not out_ctx.any()


def test_nan_blocks_in_the_pixmap_near_the_clipped_edge():
    """Holes where the box crosses the frame; in most of these drizzle's inversion of the
    clipped polygon meets a NaN (checked with an instrumented build) and it scans a
    polygon mixing inverted vertices and box corners, which must be reproduced."""
    rng = np.random.default_rng(5)
    in_shape, out_shape = (30, 34), (40, 40)
    inputs = []
    for case in range(12):
        pixmap = make_pixmap(in_shape, out_shape, rng.uniform(0, 360),
                             shift=tuple(rng.uniform(-15, 15, 2)), distortion=0.3)
        j0, i0 = rng.integers(0, 25), rng.integers(0, 28)
        pixmap[j0:j0 + int(rng.integers(2, 8)), i0:i0 + int(rng.integers(2, 8))] = np.nan
        if case % 4 == 0:  # a box corner unmapped too: drizzle scans the whole box
            pixmap[-3:, -2:] = np.nan
        data = rng.normal(size=in_shape).astype(np.float32)
        counts, out_wht = drizzle_one_both_ways(data, out_shape, exptime=1.0, pixmap=pixmap,
                                                pixfrac=0.8)
        assert (out_wht > 0).sum() > 100
        inputs.append(counts)
    assert sum(nskip for _, nskip in inputs) > 0


def test_input_subranges_combined_with_clipping():
    rng = np.random.default_rng(8)
    pixmap = make_pixmap(IN_SHAPE, OUT_SHAPE, 5.0, shift=(45.0, 35.0), distortion=1.0)
    limits = [dict(xmin=30, xmax=250, ymin=10, ymax=200),  # still reaching out on the right
              dict(xmin=200, ymin=150),                     # mostly the part outside
              dict(xmax=60, ymax=40),                        # wholly inside
              dict(xmin=291, ymin=250)]                      # wholly outside
    inputs = [one_input(rng, pixmap, 0.9, **limit) for limit in limits]
    _, _, out_ctx, counts = run_both(inputs)
    assert counts[3] == (0, 0)
    assert (out_ctx & 1).any() and (out_ctx & 2).any() and (out_ctx & 4).any()
    assert not (out_ctx & 8).any()


def test_sweep_of_geometries_around_the_frame():
    """Many rotations/scales with the box just inside the output frame or sticking out of
    it by 0-3 pixels on each side: drizzle's scanner (clipped polygon, inversion,
    scan-line limits) must visit exactly the same pixels."""
    rng = np.random.default_rng(3)
    sticking_out = 0
    for case in range(72):
        in_shape = (int(rng.integers(20, 40)), int(rng.integers(20, 40)))
        angle, scale = rng.uniform(0, 360), rng.uniform(0.7, 1.4)
        pixmap = make_pixmap(in_shape, (1, 1), angle, scale=scale,
                             distortion=rng.uniform(-0.5, 0.5))
        corners = box_corners_in_output(pixmap)
        if case % 4 == 0:  # tight: the lowest/leftmost corner 0.02 px inside the frame
            low, high = np.full(2, -0.02), np.full(2, 3.0)
        else:  # each side out by up to 3 px (or in by up to 1)
            low, high = rng.uniform(-1, 3, 2), rng.uniform(-1, 3, 2)
        pixmap -= corners.min(axis=0) + 0.5 + low
        span = corners.max(axis=0) - corners.min(axis=0) + low
        out_shape = tuple(int(np.ceil(n)) for n in (span - high)[::-1])
        sticking_out += bool((low > 0).any() or (high > 0).any())
        data = rng.normal(size=in_shape).astype(np.float32)
        pixfrac = 1.0 if case % 2 else rng.uniform(0.3, 1)
        drizzle_one_both_ways(data, out_shape, exptime=1.0, pixmap=pixmap, pixfrac=pixfrac)
    assert sticking_out > 40


def test_variance_planes_are_square_rooted_by_the_kernel():
    """extra_sqrt=True on variances equals drizzling np.sqrt(variance) (negative → NaN)."""
    rng = np.random.default_rng(5)
    data, weights, extras = make_input(rng, IN_SHAPE)
    variances = [plane * plane for plane in extras]
    variances[0][10:12, 20:30] = -1.0  # np.sqrt gives NaN there; so must the kernel
    pixmap = make_pixmap(IN_SHAPE, OUT_SHAPE, 12.0, shift=(40.0, -3.0), distortion=1.5)
    common = dict(exptime=1.0, pixmap=pixmap, pixfrac=0.8, in_units="cps", iscale=1.1)

    def ours(planes, sqrt):
        out = [np.zeros(OUT_SHAPE, np.float32) for _ in planes]
        square.add_image(data, out_img=np.full(OUT_SHAPE, np.nan, np.float32),
                         out_wht=np.zeros(OUT_SHAPE, np.float32), weight_map=weights,
                         extra_data=planes, extra_out=out, extra_wht=np.zeros(OUT_SHAPE, np.float32),
                         extra_sqrt=sqrt, **common)
        return out

    with np.errstate(invalid="ignore"):
        roots = [np.sqrt(v) for v in variances]
    for got, root in zip(ours(variances, True), roots):
        expected, _ = reference_extra(root, dict(common, weight_map=weights))
        np.testing.assert_array_equal(got, expected)
        assert np.isfinite(got).sum() > 0.5 * got.size
    for got, plain in zip(ours(roots, False), ours(variances, True)):
        np.testing.assert_array_equal(got, plain)
