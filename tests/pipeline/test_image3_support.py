"""Shared Image3 test data: a simulated 4-exposure SUB640 dither set, made once per session.

``image3_data`` simulates the ``demo`` preset (injected pointing errors and sky offsets),
runs webbcal's Detector1 and Image2 on every exposure (``real``: what a user gets), and
also makes an ``aligned`` set that isolates Image3 from Detector1 and from the pointing
errors: each rate's SCI is the simulator's true count rate plus Gaussian noise of the
Detector1 ERR (so noise and ERR agree), DQ is cleared, and the header pointing is the
*true* one (so the WCSs agree to the simulator's precision). ``outliers`` is the aligned
set with single-pixel outliers injected into the cal images (their positions kept).
``astrometry_data`` is a denser scene (3000 sources/arcmin², 2 dithers, same detector
and references as the demo set) through Detector1 and Image2 with the *commanded*
pointings, with the simulator's absolute reference catalog: enough stars in a SUB640
field for tweakreg's default minobj / abs_minobj.
Other test modules import these fixtures from here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

SEED = 11
OUTLIERS_PER_EXPOSURE = 1500
_CACHE: dict = {}


@dataclass
class Image3Data:
    root: Path
    names: list[str]
    real_asn: Path
    aligned_asn: Path
    outlier_asn: Path
    pointing: list[dict]                      # truth/pointing.json
    sources: dict[str, Table]                 # true pixel positions per exposure
    catalog: Table                            # the scene
    injected: dict[str, np.ndarray] = field(default_factory=dict)  # (n, 2) y, x per exposure

    @property
    def true_skies(self) -> np.ndarray:
        return np.array([p["sky_mjy_sr"] for p in self.pointing])


def _asn_copy(asn: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    target = folder / asn.name
    shutil.copy(asn, target)
    return target


def _true_rate(root: Path, name: str, pointing: dict, rng) -> Path:
    from astropy.io import fits

    from webbcal.io.product import read_product, write_product

    product = read_product(root / "rate" / f"{name}_rate.fits", lazy=False)
    with fits.open(root / "truth" / f"{name}_rate.fits") as hdul:
        true = hdul["RATE"].data.astype(np.float64)
    err = np.asarray(product.arrays["ERR"], np.float64)
    err = np.where(np.isfinite(err) & (err > 0), err, np.nanmedian(err))
    product.arrays["SCI"] = (true + rng.normal(0.0, 1.0, true.shape) * err).astype(np.float32)
    product.arrays["ERR"] = err.astype(np.float32)
    product.arrays["DQ"] = np.zeros(true.shape, np.uint32)
    # consistent variances: read noise from Detector1, Poisson the rest of ERR²
    rnoise = np.asarray(product.arrays["VAR_RNOISE"], np.float64)
    rnoise = np.where(np.isfinite(rnoise) & (rnoise > 0) & (rnoise < err**2), rnoise, np.nanmedian(rnoise))
    product.arrays["VAR_RNOISE"] = rnoise.astype(np.float32)
    product.arrays["VAR_POISSON"] = np.maximum(err**2 - rnoise, 0).astype(np.float32)
    for key in ("RA_REF", "DEC_REF", "ROLL_REF"):
        product.meta[key] = pointing["true"][key]
    out = root / "true_rate" / f"{name}_rate.fits"
    out.parent.mkdir(exist_ok=True)
    write_product(product, out)
    return out


def _inject(cal: Path, target: Path, rng) -> np.ndarray:
    """Copy ``cal`` to ``target`` with single-pixel outliers of 20–200 σ (ERR) added."""
    from webbcal.io.product import read_product, write_product

    product = read_product(cal, lazy=False)
    sci = np.array(product.arrays["SCI"])
    err = np.asarray(product.arrays["ERR"])
    ny, nx = sci.shape
    flat = rng.choice(ny * nx, OUTLIERS_PER_EXPOSURE, replace=False)
    y, x = np.unravel_index(flat, sci.shape)
    ok = np.isfinite(sci[y, x]) & np.isfinite(err[y, x])
    y, x = y[ok], x[ok]
    sci[y, x] += (rng.uniform(20.0, 200.0, y.size) * err[y, x]).astype(np.float32)
    product.arrays["SCI"] = sci
    write_product(product, target)
    return np.transpose([y, x])


def build_data(root: Path) -> Image3Data:
    from webbcal.pipeline.detector1 import run_detector1
    from webbcal.pipeline.image2 import run_image2
    from webbcal.simulate.program import settings_for, simulate_program

    summary = simulate_program(root, settings_for("demo"), seed=SEED)
    names = summary["exposures"]
    image3_asn = next(Path(p) for p in summary["associations"] if "image3" in Path(p).name)
    pointing = json.loads((root / "truth" / "pointing.json").read_text())
    rng = np.random.default_rng(SEED)
    real = _asn_copy(image3_asn, root / "real")
    aligned = _asn_copy(image3_asn, root / "aligned")
    outliers = _asn_copy(image3_asn, root / "outliers")
    injected = {}
    (root / "rate").mkdir()
    for name, truth in zip(names, pointing):
        rate = root / "rate" / f"{name}_rate.fits"
        run_detector1(root / "uncal" / f"{name}_uncal.fits", rate_path=rate, refs_dir=root / "refs")
        run_image2(rate, cal_path=root / "real" / f"{name}_cal.fits", refs_dir=root / "refs", save_i2d=False)
        true_rate = _true_rate(root, name, truth, rng)
        cal = root / "aligned" / f"{name}_cal.fits"
        run_image2(true_rate, cal_path=cal, refs_dir=root / "refs", save_i2d=False)
        injected[name] = _inject(cal, root / "outliers" / f"{name}_cal.fits", rng)
    sources = {n: Table.read(root / "truth" / f"{n}_sources.ecsv", format="ascii.ecsv") for n in names}
    catalog = Table.read(root / "truth" / "catalog.ecsv", format="ascii.ecsv")
    return Image3Data(root, names, real, aligned, outliers, pointing, sources, catalog, injected)


@pytest.fixture(scope="session")
def image3_data(tmp_path_factory) -> Image3Data:
    if "data" not in _CACHE:
        _CACHE["data"] = build_data(tmp_path_factory.mktemp("image3_sim"))
    return _CACHE["data"]


@pytest.fixture(scope="session")
def image3_outputs(image3_data, tmp_path_factory):
    """run_image3 on the outlier-injected aligned set (default parameters, simulator's refs)."""
    if "outputs" not in _CACHE:
        from webbcal.pipeline.image3 import run_image3

        out = tmp_path_factory.mktemp("image3_out")
        _CACHE["outputs"] = run_image3(image3_data.outlier_asn, out, refs_dir=image3_data.root / "refs")
    return _CACHE["outputs"]


@pytest.fixture(scope="session")
def aligned_outputs(image3_data, tmp_path_factory):
    """run_image3 on the aligned set without injected outliers (default parameters, refs)."""
    if "aligned_outputs" not in _CACHE:
        from webbcal.pipeline.image3 import run_image3

        out = tmp_path_factory.mktemp("image3_aligned_out")
        _CACHE["aligned_outputs"] = run_image3(image3_data.aligned_asn, out, refs_dir=image3_data.root / "refs")
    return _CACHE["aligned_outputs"]


@dataclass
class AstrometryData:
    root: Path
    names: list[str]
    asn: Path
    refcat: Path
    refs: Path
    catalog: Table                            # the scene
    sources: dict[str, Table]                 # true pixel positions per exposure

    def wcs_errors_mas(self, wcses) -> np.ndarray:
        """(2, n) errors (RA·cos δ, Dec; mas) of the WCSs at the true pixel positions of every
        star on each exposure."""
        errors = []
        for name, wcs in zip(self.names, wcses):
            src = self.sources[name]
            src = src[src["on_detector"] & ~src["is_extended"]]
            ra, dec = wcs(np.asarray(src["x"]), np.asarray(src["y"]))
            true = self.catalog[np.searchsorted(self.catalog["id"], src["id"])]
            errors.append(np.stack([(ra - true["ra"]) * np.cos(np.radians(true["dec"])),
                                    dec - true["dec"]]) * 3.6e6)
        return np.hstack(errors)


def build_astrometry(root: Path, refs: Path) -> AstrometryData:
    from webbcal.pipeline.detector1 import run_detector1
    from webbcal.pipeline.image2 import run_image2
    from webbcal.simulate.program import settings_for, simulate_program

    # same detector state (seed) and timing as the demo set: its references serve
    settings = settings_for("demo", ndither=2, source_density=3000.0, write_references=False)
    summary = simulate_program(root, settings, seed=SEED)
    names = summary["exposures"]
    cal_dir = root / "cal"
    cal_dir.mkdir()
    for name in names:
        rate = root / "rate" / f"{name}_rate.fits"
        run_detector1(root / "uncal" / f"{name}_uncal.fits", rate_path=rate, refs_dir=refs)
        run_image2(rate, cal_path=cal_dir / f"{name}_cal.fits", refs_dir=refs, save_i2d=False)
    image3_asn = next(Path(p) for p in summary["associations"] if "image3" in Path(p).name)
    sources = {n: Table.read(root / "truth" / f"{n}_sources.ecsv", format="ascii.ecsv") for n in names}
    catalog = Table.read(root / "truth" / "catalog.ecsv", format="ascii.ecsv")
    return AstrometryData(root, names, _asn_copy(image3_asn, cal_dir), Path(summary["refcat"]), refs,
                          catalog, sources)


@pytest.fixture(scope="session")
def astrometry_data(image3_data, tmp_path_factory) -> AstrometryData:
    if "astrometry" not in _CACHE:
        _CACHE["astrometry"] = build_astrometry(tmp_path_factory.mktemp("image3_astrometry"),
                                                image3_data.root / "refs")
    return _CACHE["astrometry"]
