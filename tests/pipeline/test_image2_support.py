"""Shared Image2 test data: one simulated SUB640 exposure through Detector1, made once.

``image2_data`` (session) simulates the ``demo`` preset with one dither, runs webbcal's
Detector1 in-process, and also writes a *noise-free* rate: the same product with SCI
replaced by the simulator's true count rate (``truth/<exp>_rate.fits``) and DQ cleared
(no saturated cores, no cosmic-ray or bad-pixel holes; only the flat's own NO_FLAT_FIELD
pixels end up invalid), which isolates Image2's accuracy from Detector1's. ``image2_outputs``
runs Image2 on both.
Other test modules import these fixtures from here (``python -m pytest`` from the repo).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

SEED = 5
_CACHE: dict = {}


@dataclass
class Image2Data:
    root: Path
    name: str
    rate: Path          # Detector1 output
    true_rate: Path     # same product, SCI = true count rate
    refs: Path
    truth: dict         # pointing.json entry of the exposure
    sources: Table      # true pixel positions and fluxes


def build_data(root: Path) -> Image2Data:
    from webbcal.io.product import read_product, write_product
    from webbcal.pipeline.detector1 import run_detector1
    from webbcal.simulate.program import settings_for, simulate_program

    summary = simulate_program(root, settings_for("demo", ndither=1), seed=SEED)
    name = summary["exposures"][0]
    rate = root / f"{name}_rate.fits"
    run_detector1(root / "uncal" / f"{name}_uncal.fits", rate_path=rate, refs_dir=root / "refs")
    product = read_product(rate, lazy=False)
    with fits.open(root / "truth" / f"{name}_rate.fits") as hdul:
        true = hdul["RATE"].data.astype(np.float32)
    product.arrays["SCI"] = true
    product.arrays["DQ"] = np.zeros(true.shape, np.uint32)
    # uniform variances: ivm weights do not favour any pixel (Detector1's VAR_RNOISE is large
    # in saturated cores, which would down-weight them in the single-exposure drizzle)
    for plane in ("ERR", "VAR_POISSON", "VAR_RNOISE"):
        product.arrays[plane] = np.full(true.shape, np.nanmedian(product.arrays[plane]), np.float32)
    true_dir = root / "true"
    true_dir.mkdir()
    true_rate = true_dir / f"{name}_rate.fits"
    write_product(product, true_rate)
    truth = json.loads((root / "truth" / "pointing.json").read_text())[0]
    sources = Table.read(root / "truth" / f"{name}_sources.ecsv", format="ascii.ecsv")
    return Image2Data(root, name, rate, true_rate, root / "refs", truth, sources)


@pytest.fixture(scope="session")
def image2_data(tmp_path_factory) -> Image2Data:
    if "data" not in _CACHE:
        _CACHE["data"] = build_data(tmp_path_factory.mktemp("image2_sim"))
    return _CACHE["data"]


@dataclass
class Image2Outputs:
    cal: Path
    i2d: Path
    true_cal: Path
    true_i2d: Path
    result: object       # Image2Result of the Detector1 rate
    true_result: object  # Image2Result of the noise-free rate


@pytest.fixture(scope="session")
def image2_outputs(image2_data, tmp_path_factory) -> Image2Outputs:
    if "outputs" not in _CACHE:
        from webbcal.pipeline.image2 import run_image2

        out = tmp_path_factory.mktemp("image2_out")
        d = image2_data
        result = run_image2(d.rate, cal_path=out / f"{d.name}_cal.fits", i2d_path=out / f"{d.name}_i2d.fits",
                            refs_dir=d.refs)[0]
        true_result = run_image2(d.true_rate, cal_path=out / "true_cal.fits", i2d_path=out / "true_i2d.fits",
                                 refs_dir=d.refs)[0]
        _CACHE["outputs"] = Image2Outputs(out / f"{d.name}_cal.fits", out / f"{d.name}_i2d.fits",
                                          out / "true_cal.fits", out / "true_i2d.fits", result, true_result)
    return _CACHE["outputs"]


def isolated_point_sources(sources: Table, shape, *, margin=16, radius=15.0, min_rate=20.0,
                           max_rate=5000.0, contrast=0.01) -> Table:
    """Point sources well inside the array with no neighbour brighter than ``contrast``×
    their flux within ``radius`` pixels (neighbours off the array count too)."""
    ny, nx = shape
    x, y, r = (np.asarray(sources[c], float) for c in ("x", "y", "rate_dn_s"))
    keep = []
    for k in range(len(sources)):
        if sources["is_extended"][k] or not (min_rate < r[k] < max_rate):
            continue
        if not (margin < x[k] < nx - 1 - margin and margin < y[k] < ny - 1 - margin):
            continue
        d = np.hypot(x - x[k], y - y[k])
        near = (d > 1e-6) & (d < radius) & (r > contrast * r[k])
        # extended neighbours reach further
        near |= (d > 1e-6) & (d < 2 * radius) & np.asarray(sources["is_extended"]) & (r > 0.1 * r[k])
        if not near.any():
            keep.append(k)
    return sources[keep]


def source_mask(sources: Table, shape, scale: float = 1.0) -> np.ndarray:
    """True near any source (radius growing with brightness), to measure the sky."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    mask = np.zeros(shape, bool)
    for s in sources:
        rad = scale * (6 + 4 * np.log10(max(float(s["rate_dn_s"]), 1.0)))
        if s["is_extended"]:
            rad *= 2.5
        if not (-rad < s["x"] < nx + rad and -rad < s["y"] < ny + rad):
            continue
        x0, x1 = int(max(0, s["x"] - rad)), int(min(nx, s["x"] + rad + 1))
        y0, y1 = int(max(0, s["y"] - rad)), int(min(ny, s["y"] + rad + 1))
        if x1 > x0 and y1 > y0:
            sub = (slice(y0, y1), slice(x0, x1))
            mask[sub] |= (xx[sub] - s["x"]) ** 2 + (yy[sub] - s["y"]) ** 2 < rad**2
    return mask
