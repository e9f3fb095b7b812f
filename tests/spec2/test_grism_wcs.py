"""The grism dispersion (assign_wcs for WFSS) against the simulator's truth and jwst."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from conftest import grism_exposure, grism_header, grism_refs
from webbcal.errors import WebbcalError
from webbcal.spec2.grism_wcs import grism_wcs_from_specwcs

PUPILS = ("GRISMR", "GRISMC")


@pytest.mark.parametrize("pupil", PUPILS)
def test_traces_land_where_the_simulator_put_them(wfss_obs, pupil):
    """Every truth trace sample: backward(x0, y0, lambda) within 0.05 px (measured 4e-4 px,
    the float32 rounding of the truth table), forward gives back lambda."""
    outdir, _ = wfss_obs
    header = grism_header(wfss_obs, pupil)
    grism = grism_wcs_from_specwcs(grism_refs(wfss_obs, header)["specwcs"], pupil)
    truth = Table.read(outdir / "truth" / f"{grism_exposure(wfss_obs, pupil)}_traces.fits")
    assert len(truth) > 5000
    for order in sorted(set(truth["order"])):
        rows = truth[truth["order"] == order]
        x, y = grism.backward(rows["x0"], rows["y0"], rows["wavelength"], order)
        assert np.hypot(x - rows["x"], y - rows["y"]).max() < 0.05
        _, _, wavelength = grism.forward(rows["x"], rows["y"], rows["x0"], rows["y0"], order)
        # 0.05 px of dispersion (~1 nm/px) = 5e-5 micron
        assert np.abs(wavelength - rows["wavelength"]).max() < 5e-5


@pytest.mark.parametrize("pupil", PUPILS)
def test_agrees_with_the_official_grism_transform(wfss_obs, pupil):
    """jwst's NIRCAMBackwardGrismDispersion / Forward*GrismDispersion on the same SPECWCS."""
    from jwst.assign_wcs.nircam import _build_grism_det2det, _load_grism_models

    from webbcal.refs import RefCache

    outdir, _ = wfss_obs
    header = grism_header(wfss_obs, pupil)
    path = RefCache(outdir / "refs").select("specwcs", header)
    displ, dispx, dispy, invdispl, invdispx, invdispy, orders = _load_grism_models(str(path))
    official = _build_grism_det2det(orders, displ, dispx, dispy, invdispl, invdispx, invdispy, pupil=pupil)
    ours = grism_wcs_from_specwcs(grism_refs(wfss_obs, header)["specwcs"], pupil)
    assert ours.orders == tuple(orders) and ours.dispaxis == (1 if pupil == "GRISMR" else 2)
    rng = np.random.default_rng(4)
    for order in orders:
        for x0, y0 in rng.uniform(100, 1900, (5, 2)):
            lam = np.linspace(3.9, 4.9, 11)
            x, y, *_ = official.inverse(np.full(11, x0), np.full(11, y0), lam, np.full(11, order))
            xo, yo = ours.backward(x0, y0, lam, order)
            assert np.hypot(xo - x, yo - y).max() < 1e-6
            # forward: official interpolates t on 40 samples; ours solves exactly
            _, _, lam_official, _ = official(x, y, x0, y0, order)
            _, _, lam_ours = ours.forward(x, y, x0, y0, order)
            assert np.abs(lam_ours - lam).max() < 1e-9
            assert np.abs(lam_official - lam_ours).max() < 5e-6  # measured 1.4e-6 micron


def test_assign_wcs_step_sets_imaging_wcs_dispersion_and_dispaxis(scenes):
    from conftest import fresh_image
    from webbcal.steps.wfss import assign_wcs

    scene = scenes["GRISMC"]
    image = fresh_image(scene)
    assert assign_wcs.apply(image, scene.refs, assign_wcs.SPEC.defaults()) == "COMPLETE"
    assert image.meta["DISPAXIS"] == 2 and image.meta["SPECSYS"] == "BARYCENT"
    assert image.grism.orders == (1, 2)
    row = scene.truth[0]
    ra, dec = image.wcs(row["x0"], row["y0"])
    x, y = image.wcs.backward_transform(ra, dec)
    assert abs(x - row["x0"]) < 1e-3 and abs(y - row["y0"]) < 1e-3
    assert "A_ORDER" in image.meta  # SIP approximation of the imaging WCS


def test_specwcs_of_the_other_grism_is_one_clear_error(wfss_obs):
    header = grism_header(wfss_obs, "GRISMR")
    specwcs = grism_refs(wfss_obs, header)["specwcs"]
    with pytest.raises(WebbcalError, match="specwcs reference is for GRISMR, the exposure uses GRISMC"):
        grism_wcs_from_specwcs(specwcs, "GRISMC")
    with pytest.raises(WebbcalError, match="specwcs reference is for filter F444W, the exposure uses F322W2"):
        grism_wcs_from_specwcs(specwcs, "GRISMR", filter_name="F322W2")


def test_legacy_single_polynomial_and_numerical_inverse():
    """Legacy (field-independent Polynomial1D) entries, no inverse models: solved numerically."""
    from astropy.modeling.models import Polynomial1D
    from types import SimpleNamespace

    tree = {"displ": [Polynomial1D(1, c0=3.8, c1=1.2)], "dispx": [Polynomial1D(2, c0=250.0, c1=1200.0, c2=7.0)],
            "dispy": [Polynomial1D(1, c0=0.5, c1=2.0)], "orders": [1]}
    grism = grism_wcs_from_specwcs(SimpleNamespace(tree=tree, meta={}, path=None), "GRISMR")
    x, y = grism.backward(100.0, 200.0, [3.8, 4.4, 5.0], 1)
    np.testing.assert_allclose(x, 100 + np.array([250.0, 250 + 600 + 7 * 0.25, 1457.0]), atol=1e-9)
    np.testing.assert_allclose(y, 200.5 + 2 * np.array([0.0, 0.5, 1.0]), atol=1e-9)
    _, _, lam = grism.forward(x, y, 100.0, 200.0, 1)
    np.testing.assert_allclose(lam, [3.8, 4.4, 5.0], atol=1e-12)
    # beyond the trace ends t is clamped to [0, 1], as the official interpolation does
    _, _, lam = grism.forward([0.0, 2000.0], 200.0, 100.0, 200.0, 1)
    np.testing.assert_allclose(lam, [3.8, 5.0])


def test_barycentric_velocity_correction_as_official(wfss_obs):
    """VELOSYS scales forward wavelengths by 1 / (1 + v/c) and the inverse undoes it."""
    from jwst.assign_wcs.nircam import _apply_velocity_correction, _build_grism_det2det, _load_grism_models

    from webbcal.refs import RefCache

    outdir, _ = wfss_obs
    header = grism_header(wfss_obs, "GRISMR")
    path = RefCache(outdir / "refs").select("specwcs", header)
    velosys = 2.5e4  # m/s
    models = _load_grism_models(str(path))
    displ, dispx, dispy, invdispl, invdispx, invdispy, orders = models
    official = _apply_velocity_correction(
        _build_grism_det2det(orders, displ, dispx, dispy, invdispl, invdispx, invdispy, pupil="GRISMR"), velosys)
    ours = grism_wcs_from_specwcs(grism_refs(wfss_obs, header)["specwcs"], "GRISMR", velosys=velosys)
    x = np.linspace(900.0, 1500.0, 7)
    _, _, lam_official, _ = official(x, 500.0, 400.0, 510.0, 1)
    _, _, lam_ours = ours.forward(x, 500.0, 400.0, 510.0, 1)
    np.testing.assert_allclose(lam_ours, lam_official, atol=5e-6)
    xb, yb = ours.backward(400.0, 510.0, lam_ours, 1)
    np.testing.assert_allclose(xb, x, atol=1e-6)


def test_sources_without_magnitude_are_skipped(scenes, tmp_path):
    """A masked isophotal_abmag (no flux measured) leaves the source out, as officially."""
    from astropy.table import QTable

    from webbcal.spec2.boxes import select_sources
    from webbcal.spec2.catalog import read_source_catalog

    table = QTable.read(scenes["GRISMR"].catalog_path, format="ascii.ecsv")
    table["isophotal_abmag"] = np.ma.MaskedArray(table["isophotal_abmag"], mask=[True] + [False] * (len(table) - 1))
    path = tmp_path / "masked_cat.ecsv"
    table.write(path, format="ascii.ecsv")
    catalog = read_source_catalog(path)
    assert np.isnan(catalog.abmag[0])
    assert list(select_sources(catalog)) == list(range(1, len(table)))
