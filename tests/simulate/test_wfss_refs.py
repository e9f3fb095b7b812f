"""WFSS reference files: they open in stdatamodels as the right classes, validate, and hold
the simulator's models."""

from __future__ import annotations

import numpy as np
import pytest

from webbcal.simulate.grism import LW_PIXAR_SR, lw_grism_model
from webbcal.simulate.wfss import background_shape, write_wfss_references

EXPECTED = {
    "specwcs": "NIRCAMGrismModel",
    "bkg": "WfssBkgModel",
    "wavelengthrange": "WavelengthrangeModel",
    "photom": "NrcWfssPhotomModel",
    "apcorr": "NrcWfssApcorrModel",
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("wfss_refs")
    return write_wfss_references(outdir, "NRCALONG", ("F444W",), ("GRISMR", "GRISMC"))


def _reftype(path):
    return next(k for k in EXPECTED if f"_{k}_" in path.name)


def test_references_open_as_the_official_classes_and_validate(written):
    from stdatamodels.jwst import datamodels

    kinds = sorted(_reftype(p) for p in written)
    assert kinds == ["apcorr", "bkg", "bkg", "photom", "specwcs", "specwcs", "wavelengthrange"]
    for path in written:
        with datamodels.open(str(path)) as model:
            assert type(model).__name__ == EXPECTED[_reftype(path)]
            model.validate()
            assert model.meta.instrument.name == "NIRCAM"
            assert "WFSS" in model.meta.exposure.type


def test_wavelengthrange_gives_the_trace_ranges(written):
    from stdatamodels.jwst.datamodels import WavelengthrangeModel

    path = next(p for p in written if _reftype(p) == "wavelengthrange")
    model = lw_grism_model("F444W", "GRISMR")
    with WavelengthrangeModel(str(path)) as ref:
        ranges = ref.get_wfss_wavelength_range("F444W", [1, 2])
        default = [orders for filt, orders in ref.extract_orders if filt == "F444W"]
    for order in (1, 2):
        assert ranges[order] == pytest.approx(model.wavelength_range(order), abs=1e-9)
    assert default == [[1]]


def test_bkg_holds_the_background_shape(written):
    from stdatamodels.jwst.datamodels import WfssBkgModel

    for pupil in ("GRISMR", "GRISMC"):
        path = next(p for p in written if _reftype(p) == "bkg" and pupil.lower() in p.name)
        with WfssBkgModel(str(path)) as ref:
            assert (ref.meta.instrument.filter, ref.meta.instrument.pupil) == ("F444W", pupil)
            assert np.array_equal(ref.data, background_shape(lw_grism_model("F444W", pupil)))
            assert ref.dq[0, 0] != 0 and ref.dq[100, 100] == 0  # reference pixels flagged


def test_photom_rows_encode_the_inverse_sensitivity(written):
    from stdatamodels.jwst.datamodels import NrcWfssPhotomModel

    path = next(p for p in written if _reftype(p) == "photom")
    with NrcWfssPhotomModel(str(path)) as ref:
        table = ref.phot_table
        assert ref.phot_unit == "MJy micron s / (DN sr)"
        assert ref.meta.photometry.pixelarea_steradians == pytest.approx(LW_PIXAR_SR)
        assert len(table) == 4  # 2 grisms x 2 orders
        for row in table:
            pupil, order = row["pupil"].strip(), int(row["order"])
            sens = lw_grism_model("F444W", pupil).order(order).sensitivity
            n = int(row["nelem"])
            lam, rel = row["wavelength"][:n], row["relresponse"][:n]
            product = row["photmjsr"] * rel * sens(lam) * LW_PIXAR_SR * 1e6
            assert np.abs(product - 1).max() < 1e-4  # float32 wavelengths on steep filter edges


def test_references_can_go_into_a_cache(tmp_path):
    added = []

    class StandInCache:
        def add(self, path, reftype=None):
            assert path.exists()
            added.append(reftype)
            return reftype

    write_wfss_references(StandInCache(), "NRCALONG", ("F444W",), ("GRISMR",))
    assert sorted(added) == ["apcorr", "bkg", "photom", "specwcs", "wavelengthrange"]


def test_short_wave_detector_is_refused(tmp_path):
    from webbcal.errors import WebbcalError

    with pytest.raises(WebbcalError, match="long-wave"):
        write_wfss_references(tmp_path, "NRCA1")


def test_apcorr_is_the_inverse_light_fraction_of_the_simulated_psf(written):
    """The box fraction from the analytic cross-dispersion profile equals the fraction of
    a pixel-integrated simulated PSF inside a box, measured on a fine stamp (< 0.1 %)."""
    from stdatamodels.jwst.datamodels import NrcWfssApcorrModel

    from webbcal.simulate.psf import add_point_source, psf_for

    path = next(p for p in written if _reftype(p) == "apcorr")
    with NrcWfssApcorrModel(str(path)) as ref:
        row = ref.apcorr_table[0]
        sizes, table = np.asarray(row["size"]), np.asarray(row["apcorr"])
    assert table.shape == (2, sizes.size) and np.all(table[0] == table[1])
    psf = psf_for("F444W", 0.063)
    stamp = np.zeros((801, 801))
    rng = np.random.default_rng(3)
    fractions = {h: [] for h in (5, 11, 21)}
    for _ in range(8):  # trace positions within the central pixel
        stamp[:] = 0.0
        dy = rng.uniform(-0.5, 0.5)
        add_point_source(stamp, psf, 400.0, 400.0 + dy, 1.0)
        profile = stamp.sum(axis=1) / stamp.sum()
        centre = int(np.floor(400.0 + dy + 0.5))
        for h in fractions:
            fractions[h].append(profile[centre - h // 2: centre - h // 2 + h].sum())
    for h, measured in fractions.items():
        expected = 1.0 / table[0][list(sizes).index(h)]
        assert np.mean(measured) == pytest.approx(expected, rel=2e-3), h
