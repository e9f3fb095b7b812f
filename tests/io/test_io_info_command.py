"""``webbcal info``: the fields a user looks for, and one line on a bad file."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from webbcal.cli import cli, main
from webbcal.errors import WebbcalError
from webbcal.io.product import write_product
from webbcal.io.provenance import stamp_provenance

from io_builders import make_cal, make_uncal, make_wfss_cal


def test_info_shows_layout_and_pipeline_keywords(tmp_path):
    ref = tmp_path / "jwst_nircam_flat_0042.fits"
    ref.write_bytes(b"flat" * 100)
    product = make_cal()
    stamp_provenance(product.meta, product.tree, step_params={"flat_field": {"skip": False}},
                     references={"flat": ref}, inputs=["jw01_rate.fits"])
    path = write_product(product, tmp_path / "jw01_cal.fits")
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in ("SCI", "(16, 12)", "float32", "DQ", "uint32", "VAR_FLAT", "ASDF",
                     "DATAMODL  ImageModel", "DETECTOR  NRCA1", "FILTER    F200W", "PUPIL     CLEAR",
                     "EXP_TYPE  NRC_IMAGE", "READPATT  MEDIUM8", "SUBARRAY  FULL", "NINTS     2",
                     "NGROUPS   4", "S_PHOTOM  COMPLETE", "R_FLAT    jwst_nircam_flat_0042.fits",
                     "CAL_VER   0.1.0", "inputs: jw01_rate.fits", "WCS: gwcs (detector -> world)",
                     "SCI=MJy/sr"):
        assert expected in out, expected


def test_info_uncal_shows_uint16_and_tables(tmp_path):
    path = write_product(make_uncal(), tmp_path / "jw01_uncal.fits")
    out = CliRunner().invoke(cli, ["info", str(path)]).output
    assert "(2, 4, 16, 12)" in out and "uint16" in out
    assert "GROUP" in out and "8 rows" in out and "13 columns" in out
    assert "References:\n  (none recorded)" in out


def test_info_multislit_lists_extvers(tmp_path):
    path = write_product(make_wfss_cal(), tmp_path / "jw01_wfss_cal.fits")
    out = CliRunner().invoke(cli, ["info", str(path)]).output
    assert "SCI            2" in out and "WAVELENGTH     2" in out


def test_info_bad_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 100)
    result = CliRunner().invoke(cli, ["info", str(bad)])
    assert isinstance(result.exception, WebbcalError) and str(bad) in str(result.exception)
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"webbcal: error: {bad}: truncated")
