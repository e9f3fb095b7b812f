"""Shared WFSS data for the spec2 tests: one simulated observation, one scene per grism."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).parent))

from wfss_scene import make_scene  # noqa: E402

REFTYPES = ("distortion", "specwcs", "wavelengthrange", "photom")


@pytest.fixture(scope="session")
def wfss_obs(tmp_path_factory):
    """simulate_wfss with both grisms (~10 s): headers, references, truth traces."""
    from webbcal.simulate import scene as scenemod
    from webbcal.simulate.program import settings_for
    from webbcal.simulate.wfss import simulate_wfss

    outdir = tmp_path_factory.mktemp("spec2_wfss_obs")
    settings = settings_for("demo", detector="NRCALONG", filter="F444W", ngroups=2, wfss=True,
                            source_density=15.0,
                            extra={"wfss_pupils": ["GRISMR", "GRISMC"], "wfss_min_flux_jy": 3e-7})
    scene = scenemod.make_catalog(np.random.default_rng(1), 53.16, -27.79, 40.0, 6)
    summary = simulate_wfss(outdir, settings, scene, np.random.default_rng(5), seed=3)
    with open(outdir / "truth" / "o002_wfss.json") as handle:
        assert json.load(handle)["seed"] == 3
    return outdir, summary


def grism_exposure(wfss_obs, pupil: str) -> str:
    outdir, summary = wfss_obs
    return next(n for n in summary["grism_exposures"] if summary["exposures"][n]["pupil"] == pupil)


def grism_header(wfss_obs, pupil: str) -> fits.Header:
    outdir, _ = wfss_obs
    return fits.getheader(outdir / "uncal" / f"{grism_exposure(wfss_obs, pupil)}_uncal.fits")


def grism_refs(wfss_obs, header) -> dict:
    from webbcal.refs import RefCache, get_references

    outdir, _ = wfss_obs
    return get_references(REFTYPES, header, RefCache(outdir / "refs"))


@pytest.fixture(scope="session")
def scenes(wfss_obs, tmp_path_factory):
    """{pupil: Scene}: controlled sources on each grism exposure's header and references."""
    outdir = tmp_path_factory.mktemp("spec2_scenes")
    out = {}
    for pupil in ("GRISMR", "GRISMC"):
        header = grism_header(wfss_obs, pupil)
        out[pupil] = make_scene(outdir, header, grism_refs(wfss_obs, header), pupil)
    return out


def fresh_image(scene):
    """A copy of a scene's image (steps edit it in place)."""
    image = copy.copy(scene.image)
    for name in ("data", "err", "dq", "var_poisson", "var_rnoise", "var_flat"):
        setattr(image, name, getattr(scene.image, name).copy())
    image.meta = scene.image.meta.copy()
    return image


@pytest.fixture(scope="session")
def processed(scenes):
    """{pupil: (image, slits after photom, x1d Product, Scene)} with default parameters."""
    return {pupil: (*extract_spectra(scene), scene) for pupil, scene in scenes.items()}


def extract_spectra(scene, extract_1d_refs=None):
    """(image, slits after photom, x1d Product) of ``scene`` with default parameters;
    ``extract_1d_refs`` e.g. {"apcorr": reference} (default: none)."""
    from webbcal.spec2.catalog import read_source_catalog
    from webbcal.steps.wfss import assign_wcs, extract_1d, extract_2d, photom, srctype

    image = fresh_image(scene)
    assign_wcs.apply(image, scene.refs, assign_wcs.SPEC.defaults())
    catalog = read_source_catalog(scene.catalog_path)
    slits = extract_2d.apply(image, scene.refs, extract_2d.SPEC.defaults(), catalog)
    srctype.apply(slits, srctype.SPEC.defaults())
    photom.apply(slits, scene.refs, photom.SPEC.defaults())
    x1d = extract_1d.apply(slits, extract_1d_refs or {}, extract_1d.SPEC.defaults())
    return image, slits, x1d
