"""Every reference type written by webbcal opens as the official class and validates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.refs.formats import write_reference

from .conftest import USEAFTER, image_meta

EXPECTED_CLASS = {
    "mask": "MaskModel", "saturation": "SaturationModel", "superbias": "SuperBiasModel",
    "linearity": "LinearityModel", "dark": "DarkModel", "gain": "GainModel",
    "readnoise": "ReadnoiseModel", "ipc": "IPCModel", "flat": "FlatModel",
    "area": "PixelAreaModel", "bkg": "WfssBkgModel", "photom": "NrcImgPhotomModel",
    "photom_wfss": "NrcWfssPhotomModel", "apcorr": "NrcImgApcorrModel",
    "distortion": "DistortionModel", "filteroffset": "FilteroffsetModel",
    "specwcs": "NIRCAMGrismModel", "wavelengthrange": "WavelengthrangeModel",
    "abvegaoffset": "ABVegaOffsetModel",
}


@pytest.mark.parametrize("label", sorted(EXPECTED_CLASS))
def test_official_reader_opens_and_validates(every_type, label, monkeypatch):
    from stdatamodels.exceptions import ValidationWarning
    from stdatamodels.jwst import datamodels

    monkeypatch.setenv("STRICT_VALIDATION", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)
        with datamodels.open(str(every_type[label])) as model:
            assert type(model).__name__ == EXPECTED_CLASS[label]
            model.validate()
            assert model.meta.reftype.lower() == label.split("_")[0]
            assert model.meta.useafter == USEAFTER
            assert model.meta.instrument.name == "NIRCAM"


def test_dq_round_trips_through_official_dq_def(every_type):
    """The official reader expands our compressed DQ back to the standard flags we gave."""
    from stdatamodels.jwst import datamodels

    with datamodels.open(str(every_type["mask"])) as model:
        assert model.dq[1, 2] == dqflags.DEAD | dqflags.DO_NOT_USE
        assert model.dq[3, 4] == dqflags.HOT
        assert int(model.dq.sum()) == dqflags.DEAD + dqflags.DO_NOT_USE + dqflags.HOT


def test_custom_dq_def_compresses(tmp_path):
    """A DQ_DEF with non-standard bit values: the file holds those values, the reader maps back."""
    from astropy.io import fits
    from stdatamodels.jwst import datamodels

    dq = np.zeros((4, 4), np.uint32)
    dq[0, 0] = dqflags.HOT
    dq[1, 1] = dqflags.DEAD | dqflags.DO_NOT_USE
    dq_def = {"BIT": [0, 1, 2], "VALUE": [1, 2, 4], "NAME": ["DO_NOT_USE", "HOT", "DEAD"],
              "DESCRIPTION": ["bad", "hot", "dead"]}
    path = write_reference(tmp_path / "m.fits", "mask", image_meta(), arrays={"DQ": dq}, tables={"DQ_DEF": dq_def})
    raw = fits.getdata(path, "DQ")
    assert raw[0, 0] == 2 and raw[1, 1] == 5
    with datamodels.open(str(path)) as model:
        np.testing.assert_array_equal(model.dq, dq)


def test_dark_needs_nframes(tmp_path):
    with pytest.raises(WebbcalError, match="NFRAMES"):
        write_reference(tmp_path / "d.fits", "dark", image_meta(GROUPGAP=0),
                        arrays={"SCI": np.zeros((2, 4, 4), "f4")})


def test_wrong_rank_and_unknown_extension_are_refused(tmp_path):
    with pytest.raises(WebbcalError, match="SCI must be 2-D"):
        write_reference(tmp_path / "g.fits", "gain", image_meta(), arrays={"SCI": np.zeros((2, 4, 4), "f4")})
    with pytest.raises(WebbcalError, match="no extension"):
        write_reference(tmp_path / "g.fits", "gain", image_meta(), arrays={"SCI": np.zeros((4, 4), "f4"), "FOO": np.zeros(3)})
    assert not (tmp_path / "g.fits").exists()


def test_full_frame_defaults_subarray_keywords(tmp_path):
    from astropy.io import fits

    path = write_reference(tmp_path / "g.fits", "gain", {"DETECTOR": "NRCB2", "USEAFTER": USEAFTER},
                           arrays={"SCI": np.ones((2048, 2048), "f4")})
    header = fits.getheader(path)
    assert (header["SUBARRAY"], header["SUBSTRT1"], header["SUBSIZE2"]) == ("FULL", 1, 2048)
    assert fits.getheader(path, "SCI")["BUNIT"] == "electrons/DN"


def test_wfss_photom_units_and_array_columns(every_type):
    from stdatamodels.jwst import datamodels

    with datamodels.open(str(every_type["photom_wfss"])) as model:
        assert (model.phot_unit, model.wave_unit) == ("MJy micron s / (DN sr)", "micron")
        row = model.phot_table[0]
        assert row["order"] == 1 and row["nelem"] == 8
        np.testing.assert_allclose(row["wavelength"], np.linspace(3.8, 5.0, 8), rtol=1e-6)
