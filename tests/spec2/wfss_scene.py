"""A controlled WFSS exposure for the spec2 tests: known sources, known spectra, known noise.

The header, references and pointing come from one ``simulate_wfss`` observation (the
simulator's own SPECWCS/WAVELENGTHRANGE/PHOTOM/DISTORTION); the count-rate image is
rendered here with ``render_dispersed_rate`` for sources placed where their order-1
spectra do not overlap, plus Gaussian noise of known variance. The image stands for a
flat-fielded, background-subtracted rate (what extract_2d receives), so these tests
measure the geometry, cut-outs, photom and extraction alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import QTable, Table

from webbcal.simulate import scene as scenemod
from webbcal.simulate.wfss import render_dispersed_rate
from webbcal.steps.image_model import CalImage

SHAPE = (2048, 2048)
EXPOSURE_S = 600.0
SKY_RATE = 0.3  # DN/s per pixel: sets the Poisson floor of the noise (sky already subtracted)
READ_VAR = 2e-4  # (DN/s)^2 per pixel
POINT_HALF_BOX = 4.0  # segment half size of a point source, pixels
EXTENDED_HALF_BOX = 9.0
LINES_UM = (4.15, 4.62)


@dataclass
class Scene:
    image: CalImage
    catalog_path: Path
    truth: Table  # the scene rows (id, is_extended, SED columns) with x0, y0
    traces: list  # TraceTruth per (source, order) from the renderer
    refs: dict


def scene_rows(pupil: str, n_point: int = 6, n_extended: int = 3) -> Table:
    """Sources whose order-1 traces lie fully on the detector, 70 pixels apart across."""
    rows = []
    along = [150.0 + 80.0 * (k % 4) for k in range(n_point + n_extended)]
    across = [180.0 + 170.0 * k + 0.37 * k for k in range(n_point + n_extended)]
    for k in range(n_point + n_extended):
        extended = k >= n_point
        x0, y0 = (along[k] + 0.3, across[k]) if pupil == "GRISMR" else (across[k], along[k] + 0.3)
        row = {"id": 101 + k, "ra": 0.0, "dec": 0.0, "is_extended": extended,
               "sed_ref_wave": 4.4, "sed_ref_flux": 3e-5 * (1 + 0.4 * k), "sed_slope": -1.0 + 0.35 * k,
               "r_eff": 0.12 if extended else 0.0, "sersic_n": 1.0 if extended else 0.0,
               "axis_ratio": 0.8 if extended else 1.0, "theta": 30.0 if extended else 0.0,
               "x0": x0, "y0": y0}
        for j, centre in enumerate(LINES_UM, start=1):
            row[f"line{j}_wave"] = centre if extended else 0.0
            # erg/s/cm^2: S/N ~ 60 per line, so its centroid measures the wavelength
            # scale to < 0.1 pixel rather than the noise (S/N ~ 13 scatters it by ~0.4 px)
            row[f"line{j}_flux"] = 2e-16 * (1 + 0.3 * k) if extended else 0.0
            row[f"line{j}_sigma"] = 0.002 if extended else 0.0
        rows.append(row)
    return Table(rows=rows)


def noisy_image(rate: np.ndarray, header: fits.Header, rng) -> CalImage:
    var_poisson = (np.maximum(rate, 0.0) + SKY_RATE) / EXPOSURE_S
    var_rnoise = np.full(rate.shape, READ_VAR)
    data = rate + rng.normal(0.0, 1.0, rate.shape) * np.sqrt(var_poisson + var_rnoise)
    f32 = np.float32
    return CalImage(data=data.astype(f32), err=np.sqrt(var_poisson + var_rnoise).astype(f32),
                    dq=np.zeros(rate.shape, np.uint32), meta=header.copy(),
                    var_poisson=var_poisson.astype(f32), var_rnoise=var_rnoise.astype(f32),
                    var_flat=np.zeros(rate.shape, f32))


def write_catalog(path: Path, wcs, labels, x0, y0, extended, abmag) -> Path:
    """An Image3-style catalog (SkyCoord columns) of sources at grism-frame (x0, y0)."""
    from astropy.coordinates import SkyCoord

    x0, y0 = np.asarray(x0, float), np.asarray(y0, float)
    half = np.where(extended, EXTENDED_HALF_BOX, POINT_HALF_BOX)

    def sky(x, y):
        ra, dec = wcs(x, y, with_bounding_box=False)
        return SkyCoord(ra, dec, unit="deg")

    table = QTable()
    table["label"] = np.asarray(labels, np.int32)
    table["xcentroid"], table["ycentroid"] = x0, y0
    table["sky_centroid"] = sky(x0, y0)
    table["isophotal_abmag"] = np.asarray(abmag, float)
    table["isophotal_abmag_err"] = np.full(x0.size, 0.01)
    table["sky_bbox_ll"] = sky(x0 - half, y0 - half)
    table["sky_bbox_lr"] = sky(x0 + half, y0 - half)
    table["sky_bbox_ul"] = sky(x0 - half, y0 + half)
    table["sky_bbox_ur"] = sky(x0 + half, y0 + half)
    table["is_extended"] = np.asarray(extended, bool)
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path


def abmag_of(rows) -> np.ndarray:
    return np.array([-2.5 * np.log10(scenemod.sed_flux_jy(r, 4.4) / 3631.0) for r in rows])


def make_scene(outdir: Path, header: fits.Header, refs: dict, pupil: str, seed: int = 11) -> Scene:
    from webbcal.steps.wfss import assign_wcs

    rows = scene_rows(pupil)
    rendered = render_dispersed_rate(rows, (rows["x0"], rows["y0"]), "F444W", pupil, SHAPE, orders=(1, 2))
    image = noisy_image(rendered.rate, header, np.random.default_rng(seed))
    assign_wcs.apply(image, refs, assign_wcs.SPEC.defaults())
    catalog = write_catalog(outdir / f"scene_{pupil.lower()}_cat.ecsv", image.wcs, rows["id"], rows["x0"],
                            rows["y0"], rows["is_extended"], abmag_of(rows))
    image.grism = None  # each test runs assign_wcs itself
    image.wcs = None
    return Scene(image, catalog, rows, rendered.traces, refs)
