"""``webbcal spec2`` and the Spec2 steps of ``webbcal step``: options reach the steps,
outputs are named as documented, bad input is one line on stderr and exit status 2.

Runs on the shared simulated WFSS observation (``tests/pipeline/test_spec2_support.py``).
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from commands.cli_runner import webbcal
from tests.pipeline.test_spec2_support import spec2_data  # noqa: F401


def test_spec2_writes_cal_and_x1d_with_options(spec2_data, tmp_path):
    cal = tmp_path / "mine_cal.fits"
    proc = webbcal("spec2", spec2_data.asn, "-o", cal, "--refs", spec2_data.refs,
                   "--set", "extract_2d.wfss_nbright=4", "--set", "extract_2d.extract_orders=1",
                   "--skip", "bkg_subtract")
    assert proc.returncode == 0, proc.stderr
    x1d = tmp_path / "mine_x1d.fits"  # named after the cal
    assert proc.stdout.strip() == f"wrote {cal} and {x1d}"
    header = fits.getheader(cal)
    assert header["S_BKDSUB"] == "SKIPPED" and header["S_EXTR1D"] == "COMPLETE"
    with fits.open(cal) as hdul:
        orders = {h.header.get("SPORDER") for h in hdul if h.name == "SCI"}
        sources = {h.header.get("SOURCEID") for h in hdul if h.name == "SCI"}
    assert orders == {1} and len(sources) == 4


def test_override_na_skips_the_background(spec2_data, tmp_path):
    cal = tmp_path / "na_cal.fits"
    proc = webbcal("spec2", spec2_data.rate, "--catalog", spec2_data.catalog, "-o", cal,
                   "--refs", spec2_data.refs, "--override-bkg", "N/A",
                   "--set", "extract_2d.wfss_nbright=3")
    assert proc.returncode == 0, proc.stderr
    assert fits.getval(cal, "S_BKDSUB") == "SKIPPED"
    assert fits.getval(cal, "SCATFILE") == spec2_data.catalog.name


def test_bad_input_is_one_line(spec2_data, tmp_path):
    asn = spec2_data.copy_asn(tmp_path, drop="sourcecat")
    proc = webbcal("spec2", asn, "--refs", spec2_data.refs)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "sourcecat" in proc.stderr
    proc = webbcal("spec2", spec2_data.rate, "--refs", spec2_data.refs, "-o", tmp_path / "y_cal.fits")
    assert proc.returncode == 2 and "no source catalog" in proc.stderr
    proc = webbcal("spec2", spec2_data.asn, "--refs", spec2_data.refs, "--set", "bkg_subtract.nope=1",
                   "-o", tmp_path / "z_cal.fits")
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert not list(tmp_path.glob("*_cal.fits")) and not list(tmp_path.glob("*_x1d.fits"))


def test_step_picks_the_spec2_flat_for_a_grism_exposure(spec2_data, tmp_path):
    by_type, qualified = tmp_path / "a_flat.fits", tmp_path / "b_flat.fits"
    for name, out in (("flat_field", by_type), ("spec2.flat_field", qualified)):
        proc = webbcal("step", name, spec2_data.rate, "-o", out, "--refs", spec2_data.refs)
        assert proc.returncode == 0, proc.stderr
        assert fits.getval(out, "S_FLAT") == "COMPLETE"
        assert "grismr" in fits.getval(out, "R_FLAT")  # the grism flat, selected by PUPIL
    np.testing.assert_array_equal(fits.getdata(by_type, "SCI"), fits.getdata(qualified, "SCI"))
    proc = webbcal("step", "spec2.photom", spec2_data.rate, "--refs", spec2_data.refs)
    assert proc.returncode == 2 and "run 'webbcal spec2'" in proc.stderr
    listing = webbcal("step", "--help").stdout
    assert "bkg_subtract" in listing and "spec2.assign_wcs" in listing
