"""Small hand-built products of every kind a preview draws."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal.io.layouts import wfss_spectable_dtype
from webbcal.io.product import Product, write_product

# The slits of the hand-built WFSS cal: (x0, y0, width, height, order, source id), 0-based.
SLITS = [(10, 20, 60, 8, 1, 101), (30, 50, 50, 6, 1, 102), (5, 70, 40, 5, 2, 101)]


def image_product(data, bunit="MJy/sr", model="ImageModel", **keywords) -> Product:
    meta = fits.Header({"DETECTOR": "NRCA1", "FILTER": "F150W", "PUPIL": "CLEAR",
                        "EXP_TYPE": "NRC_IMAGE", **keywords})
    return Product(model=model, meta=meta, arrays={"SCI": np.asarray(data, np.float32)},
                   ext_meta={"SCI": {"BUNIT": bunit}})


@pytest.fixture
def rate_file(tmp_path):
    """A 100 x 120 rate: noise, one bright star at (x=80, y=30), a NaN block."""
    rng = np.random.default_rng(3)
    data = rng.normal(1.0, 0.1, (100, 120))
    yy, xx = np.mgrid[:100, :120]
    data += 50 * np.exp(-((xx - 80) ** 2 + (yy - 30) ** 2) / 4.0)
    data[60:70, 10:20] = np.nan
    return write_product(image_product(data, bunit="DN/s"), tmp_path / "jw01_rate.fits")


@pytest.fixture
def wfss_cal_file(tmp_path):
    """A MultiSlitModel cal of three slits on a 100 x 120 grism image."""
    arrays, ext_meta = {}, {}
    for number, (x0, y0, width, height, order, source) in enumerate(SLITS, start=1):
        arrays[f"SCI,{number}"] = np.full((height, width), float(number), np.float32)
        ext_meta[f"SCI,{number}"] = {"BUNIT": "MJy/sr", "SLTSTRT1": x0 + 1, "SLTSTRT2": y0 + 1,
                                     "SLTSIZE1": width, "SLTSIZE2": height, "SPORDER": order,
                                     "SOURCEID": source}
    meta = fits.Header({"EXP_TYPE": "NRC_WFSS", "FILTER": "F444W", "PUPIL": "GRISMR",
                        "SUBSIZE1": 120, "SUBSIZE2": 100})
    product = Product(model="MultiSlitModel", meta=meta, arrays=arrays, ext_meta=ext_meta)
    return write_product(product, tmp_path / "jw02_cal.fits")


def spectra_table(rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], length: int) -> np.ndarray:
    """EXTRACT1D rows (source id, wavelength, flux, error), NaN-padded to ``length``."""
    table = np.zeros(len(rows), dtype=wfss_spectable_dtype(length))
    for index, (source, wavelength, flux, error) in enumerate(rows):
        n = wavelength.size
        table["SOURCE_ID"][index] = source
        table["N_ALONGDISP"][index] = n
        for column, values in (("WAVELENGTH", wavelength), ("FLUX", flux), ("FLUX_ERROR", error)):
            table[column][index] = np.nan
            table[column][index, :n] = values
    return table


@pytest.fixture
def x1d_file(tmp_path):
    """Two orders; source 7 strong (S/N 20), source 8 weak (S/N 2), order 2 one short spectrum."""
    wave = np.linspace(3.9, 5.0, 50)
    order1 = spectra_table([(7, wave, np.full(50, 2e-6), np.full(50, 1e-7)),
                            (8, wave, np.full(50, 2e-7), np.full(50, 1e-7))], 50)
    order2 = spectra_table([(7, wave[:30], np.full(30, 1e-6), np.full(30, 1e-7))], 50)
    product = Product(model="WFSSMultiSpecModel", meta=fits.Header({"EXP_TYPE": "NRC_WFSS"}),
                      tables={"EXTRACT1D,1": order1, "EXTRACT1D,2": order2},
                      ext_meta={"EXTRACT1D,1": {"SPORDER": 1}, "EXTRACT1D,2": {"SPORDER": 2}})
    return write_product(product, tmp_path / "jw02_x1d.fits")
