"""The batched Gaussian centroid fit against photutils ``centroid_2dg`` (the same model,
objective and box) on stars with known positions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from webbcal.image3.gaussfit import box_inside, gaussian_centroids

SHAPE = (400, 400)


def star_field(n=150, seed=3, noise=1.0):
    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, noise, SHAPE)
    yy, xx = np.indices(SHAPE)
    xs, ys = rng.uniform(6, SHAPE[1] - 7, n), rng.uniform(6, SHAPE[0] - 7, n)
    for x, y, flux in zip(xs, ys, rng.uniform(300, 5000, n)):
        sl = (slice(int(y) - 8, int(y) + 9), slice(int(x) - 8, int(x) + 9))
        dx, dy = xx[sl] - x, yy[sl] - y
        u, v = 0.92 * dx + 0.39 * dy, -0.39 * dx + 0.92 * dy  # 23 degrees
        img[sl] += flux / (2 * np.pi * 1.1 * 1.4) * np.exp(-0.5 * (u**2 / 1.1**2 + v**2 / 1.4**2))
    starts_x, starts_y = xs + rng.normal(0, 0.2, n), ys + rng.normal(0, 0.2, n)
    return img, xs, ys, starts_x, starts_y


def photutils_centroids(img, mask, x, y):
    from photutils.centroids import centroid_2dg, centroid_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return centroid_sources(img, x, y, box_size=7, mask=mask, centroid_func=centroid_2dg)


def test_fits_equal_photutils_centroid_2dg():
    img, xs, ys, sx, sy = star_field()
    rng = np.random.default_rng(0)
    mask = np.zeros(SHAPE, bool)
    mask[rng.integers(0, SHAPE[0], 800), rng.integers(0, SHAPE[1], 800)] = True
    ax, ay = photutils_centroids(img, mask, sx, sy)
    bx, by = gaussian_centroids(img, mask, sx, sy)
    # both converged (a blended pair can send either fit away; the caller drops moves > 1 px)
    settled = (np.hypot(ax - sx, ay - sy) < 1) & (np.hypot(bx - sx, by - sy) < 1)
    assert settled.mean() > 0.95
    diff = np.hypot(ax - bx, ay - by)[settled]
    assert np.median(diff) < 1e-6
    assert np.percentile(diff, 95) < 1e-4
    # and the centroids are as good as the truth allows
    err = np.hypot(bx - xs, by - ys)[settled]
    assert np.median(err) < 0.05


def test_masked_pixels_carry_no_weight():
    img, xs, ys, sx, sy = star_field(n=20, noise=0.5)
    mask = np.zeros(SHAPE, bool)
    bx, by = gaussian_centroids(img, mask, sx, sy)
    hot = img.copy()
    for x, y in zip(sx, sy):  # a wild pixel in every box, masked
        hot[int(np.ceil(y - 3.5)), int(np.ceil(x - 3.5))] = 1e6
        mask[int(np.ceil(y - 3.5)), int(np.ceil(x - 3.5))] = True
    hx, hy = gaussian_centroids(hot, mask, sx, sy)
    cx, cy = gaussian_centroids(np.where(mask, 0.0, img), mask, sx, sy)
    np.testing.assert_allclose(hx, cx, atol=1e-9)
    np.testing.assert_allclose(hy, cy, atol=1e-9)
    assert np.nanmax(np.hypot(hx - bx, hy - by)) < 0.1  # one pixel less changes little


def test_edge_boxes_and_too_few_pixels_give_nan():
    img, *_ = star_field(n=5)
    x, y = np.array([1.2, 200.0, 398.6, 200.0]), np.array([200.0, 0.4, 200.0, 200.0])
    assert box_inside(SHAPE, x, y, 7).tolist() == [False, False, False, True]
    mask = np.zeros(SHAPE, bool)
    mask[190:210, 190:210] = True  # the last star's box wholly masked
    fx, fy = gaussian_centroids(img, mask, x, y)
    assert np.isnan(fx).all() and np.isnan(fy).all()


def test_no_stars():
    fx, fy = gaussian_centroids(np.zeros(SHAPE), np.zeros(SHAPE, bool), np.empty(0), np.empty(0))
    assert fx.size == 0 and fy.size == 0
