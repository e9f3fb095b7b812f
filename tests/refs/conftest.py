"""Small reference files of every type, written through webbcal.refs.formats."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.refs.formats import write_reference

USEAFTER = "2022-01-01T00:00:00"
NY, NX = 16, 24


def image_meta(**extra):
    return {"DETECTOR": "NRCA1", "USEAFTER": USEAFTER, "SUBARRAY": "GENERIC", **extra}


def small_asdf_trees():
    """Tree content of the ASDF types (astropy models, plain lists, a Table)."""
    from astropy.modeling import models
    from astropy.table import Table

    distortion = (models.Shift(-1024) & models.Shift(-1024)) | (models.Scale(0.031) & models.Scale(0.031))
    poly2 = [models.Polynomial2D(1, c0_0=0.1), models.Polynomial2D(1, c0_0=1.0)]
    return {
        "distortion": {"model": distortion},
        "filteroffset": {"filters": [{"filter": "F200W", "pupil": "CLEAR", "column_offset": 0.5, "row_offset": -0.25}]},
        "specwcs": {"displ": [poly2], "dispx": [poly2], "dispy": [poly2], "orders": [1]},
        "wavelengthrange": {"waverange_selector": ["F444W"], "wavelengthrange": [[1, "F444W", 3.8, 5.1]], "order": [1]},
        "abvegaoffset": {"abvega_offset": Table({"filter": ["F200W"], "pupil": ["CLEAR"], "abvega_offset": np.array([1.87], "f4")})},
    }


ASDF_META = {
    "distortion": {"DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE", "FILTER": "F200W", "PUPIL": "CLEAR", "USEAFTER": USEAFTER},
    "filteroffset": {"DETECTOR": "NRCA1", "USEAFTER": USEAFTER},
    "specwcs": {"EXP_TYPE": "NRC_WFSS", "MODULE": "A", "PUPIL": "GRISMR", "USEAFTER": USEAFTER},
    "wavelengthrange": {"EXP_TYPE": "NRC_WFSS", "USEAFTER": USEAFTER},
    "abvegaoffset": {"EXP_TYPE": "NRC_IMAGE", "USEAFTER": USEAFTER},
}


def write_every_type(directory):
    """One small file per reference type (two photom/apcorr flavours); returns {label: path}."""
    rng = np.random.default_rng(5)
    img = rng.normal(1.0, 0.01, (NY, NX)).astype("f4")
    dq = np.zeros((NY, NX), np.uint32)
    dq[1, 2] = dqflags.DEAD | dqflags.DO_NOT_USE
    dq[3, 4] = dqflags.HOT
    paths = {}

    def put(label, reftype, meta, **kw):
        paths[label] = write_reference(directory / f"{label}.{ 'asdf' if reftype in ASDF_META else 'fits'}", reftype, meta, **kw)

    put("mask", "mask", image_meta(), arrays={"DQ": dq})
    put("saturation", "saturation", image_meta(), arrays={"SCI": img * 6e4, "DQ": dq})
    put("superbias", "superbias", image_meta(READPATT="RAPID"), arrays={"SCI": img * 1e4, "ERR": img, "DQ": dq})
    put("linearity", "linearity", image_meta(), arrays={"COEFFS": np.stack([img * 0, img, img * 1e-6]), "DQ": dq})
    put("dark", "dark", image_meta(EXP_TYPE="NRC_IMAGE", NOUTPUTS=4, NFRAMES=1, GROUPGAP=0, READPATT="RAPID"),
        arrays={"SCI": np.stack([img * i for i in range(5)]), "DQ": dq, "AVDRKCUR": img * 0.01})
    put("gain", "gain", image_meta(), arrays={"SCI": img * 2.0})
    put("readnoise", "readnoise", image_meta(READPATT="ANY"), arrays={"SCI": img * 10})
    put("ipc", "ipc", image_meta(), arrays={"SCI": np.full((3, 3), 0.01, "f4")})
    put("flat", "flat", image_meta(FILTER="F200W", PUPIL="CLEAR"), arrays={"SCI": img, "ERR": img * 0.01, "DQ": dq})
    put("area", "area", image_meta(FILTER="F200W", PUPIL="CLEAR", EXP_TYPE="NRC_IMAGE", PIXAR_SR=2.29e-14, PIXAR_A2=0.000974),
        arrays={"SCI": img})
    put("bkg", "bkg", image_meta(FILTER="F444W", PUPIL="GRISMR", EXP_TYPE="NRC_WFSS"), arrays={"SCI": img, "ERR": img, "DQ": dq})
    put("photom", "photom", {"DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE", "USEAFTER": USEAFTER, "PIXAR_SR": 2.29e-14},
        tables={"PHOTOM": {"filter": ["F200W", "F150W"], "pupil": ["CLEAR", "CLEAR"], "photmjsr": [0.5, 0.6], "uncertainty": [0.01, 0.01]}})
    nwave = 8
    put("photom_wfss", "photom", {"DETECTOR": "NRCALONG", "EXP_TYPE": "NRC_WFSS", "USEAFTER": USEAFTER,
                                      "PHOTUNIT": "MJy micron s / (DN sr)", "WAVEUNIT": "micron"},
        tables={"PHOTOM": {"filter": ["F444W"], "pupil": ["GRISMR"], "order": [1], "photmjsr": [1.0], "uncertainty": [0.1],
                           "nelem": [nwave], "wavelength": np.linspace(3.8, 5.0, nwave)[None], "relresponse": np.ones((1, nwave)),
                           "reluncertainty": np.zeros((1, nwave))}})
    put("apcorr", "apcorr", {"EXP_TYPE": "NRC_IMAGE", "USEAFTER": USEAFTER},
        tables={"APCORR": {"filter": ["F200W"] * 2, "pupil": ["CLEAR"] * 2, "eefraction": [0.3, 0.5], "radius": [1.2, 2.0],
                           "apcorr": [3.0, 2.0], "skyin": [5.0, 5.0], "skyout": [8.0, 8.0]}})
    for reftype, tree in small_asdf_trees().items():
        put(reftype, reftype, ASDF_META[reftype], tree=tree)
    return paths


@pytest.fixture(scope="session")
def every_type(tmp_path_factory):
    """Written once per session; tests must not modify these files (copy them first)."""
    return write_every_type(tmp_path_factory.mktemp("every_type"))


def science_header(**extra) -> fits.Header:
    header = fits.Header()
    values = {"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE",
              "READPATT": "RAPID", "SUBARRAY": "FULL", "FILTER": "F200W", "PUPIL": "CLEAR", "NOUTPUTS": 4,
              "MODULE": "A", "CHANNEL": "SHORT", "DATE-OBS": "2023-06-01", "TIME-OBS": "12:00:00.000",
              "SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": 2048, "SUBSIZE2": 2048, **extra}
    for key, value in values.items():
        header[key] = value
    return header
