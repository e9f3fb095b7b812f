"""``webbcal step NAME INPUT -o OUTPUT``: one Detector1 step alone, as ``strun`` runs it.

Chains dq_init → saturation → superbias → refpix → linearity → dark_current → jump →
ramp_fit through files and checks that the result equals ``webbcal detector1`` on the
same exposure (the stage is the composition of its steps), that step options reach the
step, and that misuse gives one error line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from commands.cli_runner import webbcal
from webbcal import dqflags

CHAIN = ("dq_init", "saturation", "superbias", "refpix", "linearity", "dark_current", "jump",
         "ramp_fit")


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    from webbcal.simulate.program import settings_for, simulate_program

    out = tmp_path_factory.mktemp("steps")
    simulate_program(out, settings_for("demo", subarray="SUB160", ngroups=5, ndither=1), seed=5)
    return out


def test_step_chain_equals_the_stage(program, tmp_path):
    uncal = next((program / "uncal").glob("*_uncal.fits"))
    refs = program / "refs"
    current = uncal
    for name in CHAIN:
        out = tmp_path / (f"x_{name}.fits" if name != "ramp_fit" else "x_rate.fits")
        proc = webbcal("step", name, current, "-o", out, "--refs", refs)
        assert proc.returncode == 0, (name, proc.stderr)
        assert fits.getheader(out)[{"dq_init": "S_DQINIT", "saturation": "S_SATURA",
                                    "superbias": "S_SUPERB", "refpix": "S_REFPIX",
                                    "linearity": "S_LINEAR", "dark_current": "S_DARK",
                                    "jump": "S_JUMP", "ramp_fit": "S_RAMP"}[name]] == "COMPLETE"
        current = out
    stage = tmp_path / "s_rate.fits"
    assert webbcal("detector1", uncal, "-o", stage, "--refs", refs).returncode == 0
    ours, theirs = fits.getdata(current, "SCI"), fits.getdata(stage, "SCI")
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(fits.getdata(current, "DQ"), fits.getdata(stage, "DQ"))
    assert (tmp_path / "x_rateints.fits").exists()
    # the intermediate ramp carries what refpix measured for jump/ramp_fit
    assert fits.getheader(tmp_path / "x_refpix.fits")["ROWNOISE"] > 0


def test_step_options_reach_the_step(program, tmp_path):
    uncal = next((program / "uncal").glob("*_uncal.fits"))
    refs = program / "refs"
    grown = {}
    for npix in (0, 2):
        out = tmp_path / f"sat{npix}_saturation.fits"
        proc = webbcal("step", "saturation", uncal, "-o", out, "--refs", refs,
                       "--n-pix-grow-sat", npix, "--keep_two_groups", "false")
        assert proc.returncode == 0, proc.stderr
        gdq = fits.getdata(out, "GROUPDQ")
        grown[npix] = int(((gdq & dqflags.SATURATED) != 0).sum())
    assert grown[2] >= grown[0]
    jump_hi = tmp_path / "hi_jump.fits"
    jump_lo = tmp_path / "lo_jump.fits"
    for out, threshold in ((jump_hi, 50), (jump_lo, 4)):
        proc = webbcal("step", "jump", uncal, "-o", out, "--refs", refs,
                       "--rejection-threshold", threshold)
        assert proc.returncode == 0, proc.stderr
    flagged = {p: int(((fits.getdata(p, "GROUPDQ") & dqflags.JUMP_DET) != 0).sum())
               for p in (jump_hi, jump_lo)}
    assert flagged[jump_lo] > flagged[jump_hi]


def test_step_misuse_is_one_line(program, tmp_path):
    uncal = next((program / "uncal").glob("*_uncal.fits"))
    proc = webbcal("step", "gain_scale", uncal, "-o", tmp_path / "g.fits", "--refs", program / "refs")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("webbcal: error:")]
    assert len(lines) == 1 and "detector1" in lines[0]
    assert not (tmp_path / "g.fits").exists()
    proc = webbcal("step", "jump", tmp_path / "missing_uncal.fits", "-o", tmp_path / "j.fits",
                   "--refs", program / "refs")
    assert proc.returncode != 0 and "missing_uncal.fits" in proc.stderr
    assert not (tmp_path / "j.fits").exists()
