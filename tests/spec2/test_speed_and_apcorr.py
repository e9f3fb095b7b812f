"""Speed of the WFSS steps for 100 catalog sources, and the optional aperture correction."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import fresh_image
from webbcal.io import write_product
from webbcal.spec2.catalog import read_source_catalog
from webbcal.steps.wfss import assign_wcs, extract_1d, extract_2d, photom, srctype
from wfss_scene import write_catalog


def test_one_hundred_sources_in_seconds(scenes, tmp_path):
    """assign_wcs → extract_2d → srctype → photom → cal → extract_1d → x1d for 100 sources
    (orders 1 and 2): measured 2.0-2.7 s here, 1.6 s of it writing the cal file (FITS
    HDUs and the per-slit gwcs in ASDF); the steps alone take ~0.3 s."""
    scene = scenes["GRISMR"]
    image = fresh_image(scene)
    assign_wcs.apply(image, scene.refs, assign_wcs.SPEC.defaults())
    rng = np.random.default_rng(2)
    n = 100
    x0, y0 = rng.uniform(-300, 2000, n), rng.uniform(0, 2047, n)
    path = write_catalog(tmp_path / "hundred_cat.ecsv", image.wcs, np.arange(1, n + 1), x0, y0,
                         rng.random(n) < 0.3, rng.uniform(18, 25, n))
    image = fresh_image(scene)
    start = time.perf_counter()
    assign_wcs.apply(image, scene.refs, assign_wcs.SPEC.defaults())
    slits = extract_2d.apply(image, scene.refs, extract_2d.SPEC.resolve({"extract_orders": "1,2"}),
                             read_source_catalog(path))
    srctype.apply(slits, {})
    photom.apply(slits, scene.refs, {})
    x1d = extract_1d.apply(slits, {}, {})
    steps = time.perf_counter() - start
    write_product(slits.to_product(), tmp_path / "hundred_cal.fits")
    write_product(x1d, tmp_path / "hundred_x1d.fits")
    total = time.perf_counter() - start
    assert len({s.source_id for s in slits.slits}) > 85  # the rest are off the detector
    assert steps < 2.0 and total < 8.0, (steps, total)


def test_aperture_correction_scales_point_sources_only(processed):
    _, slits, plain, _ = processed["GRISMR"]
    wave = np.linspace(3.5, 5.5, 5)
    size = np.array([3.0, 11.0, 30.0])
    table = np.zeros(1, dtype=[("filter", "S12"), ("pupil", "S15"), ("wavelength", "f4", (5,)),
                               ("nelem_wl", "i2"), ("size", "f4", (3,)), ("nelem_size", "i2"),
                               ("apcorr", "f4", (5, 3))])
    table["filter"], table["pupil"], table["wavelength"], table["size"] = "F444W", "GRISMR", wave, size
    table["nelem_wl"], table["nelem_size"] = 5, 3
    table["apcorr"] = 1.0 + 0.05 * np.arange(5)[:, None] * np.array([1.0, 1.0, 0.0])[None, :]
    reference = SimpleNamespace(tables={"APCORR": table}, ext_meta={}, meta={}, path="apcorr.fits")
    corrected = extract_1d.apply(slits, {"apcorr": reference}, extract_1d.SPEC.defaults())
    (a,), (b,) = plain.tables.values(), corrected.tables.values()
    for row_a, row_b in zip(a, b):
        n = row_a["N_ALONGDISP"]
        ratio = row_b["FLUX"][:n] / row_a["FLUX"][:n]
        if row_a["SOURCE_TYPE"] == b"POINT":
            # 11-pixel box at wavelength w: 1 + 0.05 * (w - 3.5) / 0.5 (bilinear in the table)
            expected = 1.0 + 0.1 * (row_a["WAVELENGTH"][:n] - 3.5)
            np.testing.assert_allclose(ratio[np.isfinite(ratio)], expected[np.isfinite(ratio)], rtol=1e-5)
            assert row_b["FLUX_VAR_POISSON"][n // 2] == pytest.approx(
                row_a["FLUX_VAR_POISSON"][n // 2] * ratio[n // 2] ** 2, rel=1e-9)
        else:
            assert np.allclose(ratio[np.isfinite(ratio)], 1.0)
