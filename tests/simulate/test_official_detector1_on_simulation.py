"""The official jwst 3.0 Detector1 on a simulated exposure recovers the simulator's truth.

This is the realism check of the simulator: the official pipeline, given the simulator's
own references, must get the true count rate back with errors that describe the scatter.
"""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from webbcal import dqflags
from webbcal.simulate.program import settings_for, simulate_program

pytestmark = pytest.mark.slow

DETECTOR1_REFS = ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise")


def _robust_sigma(x):
    return 1.4826 * np.median(np.abs(x - np.median(x)))


def test_official_detector1_recovers_the_true_rate(tmp_path):
    from tests.oracle.jwst_offline import run_official_detector1
    from webbcal.refs import RefCache

    settings = settings_for("demo", subarray="SUB320", readpatt="BRIGHT2", ngroups=6, ndither=1)
    summary = simulate_program(tmp_path / "sim", settings, 21)
    name = summary["exposures"][0]
    uncal = tmp_path / "sim" / "uncal" / f"{name}_uncal.fits"
    cache = RefCache(tmp_path / "sim" / "refs")
    header = fits.getheader(uncal)
    refs = {r: str(cache.select(r, header)) for r in DETECTOR1_REFS}
    out = run_official_detector1(uncal, refs, tmp_path / "official")
    with fits.open(out.outputs["rate"]) as hdul:
        rate, err, dq = hdul["SCI"].data, hdul["ERR"].data, hdul["DQ"].data
    truth = fits.getdata(tmp_path / "sim" / "truth" / f"{name}_rate.fits", "RATE")
    ok = np.isfinite(rate) & (err > 0) & (truth < 50)
    diff = (rate - truth)[ok]
    assert abs(np.median(diff)) < 0.02  # sky ≈ 0.33 DN/s
    assert 0.9 < _robust_sigma(diff / err[ok]) < 1.25
    # every pixel the mask calls DO_NOT_USE comes out NaN
    mask = fits.getdata(cache.select("mask", header), "DQ")[:320, :320]
    assert np.all(np.isnan(rate[(mask & dqflags.DO_NOT_USE) > 0]))
    # cosmic rays: the primary hits are found by the official jump step
    crs = Table.read(tmp_path / "sim" / "truth" / f"{name}_crs.ecsv")
    big = crs[(crs["deposit_dn"] > 200) & (crs["group"] > 0)]
    flagged = (dq[big["y"], big["x"]] & dqflags.JUMP_DET) > 0
    assert flagged.mean() > 0.95
