"""``webbcal detector1``: options, products, provenance, and one-line errors on bad input.

A small simulated exposure (SUB160, BRIGHT2, 4 groups) keeps every run short. Commands run
through ``webbcal.cli.main`` in this process (exit code and stderr as the user sees them);
one test runs the real ``python -m webbcal.cli`` process to make sure they are the same.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from commands.cli_runner import webbcal
from webbcal import dqflags


def webbcal_process(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webbcal.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    from webbcal.simulate.program import settings_for, simulate_program

    out = tmp_path_factory.mktemp("sub160")
    simulate_program(out, settings_for("demo", subarray="SUB160", ngroups=4, ndither=1), seed=3)
    return out


@pytest.fixture(scope="module")
def uncal(program) -> Path:
    return next((program / "uncal").glob("*_uncal.fits"))


def _ref(program: Path, kind: str) -> Path:
    return next((program / "refs").glob(f"*_{kind}.fits"))


def _one_error_line(proc, *needles):
    assert proc.returncode != 0, proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()
             and " INFO" not in line and " WARNING" not in line]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("webbcal: error:")
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    print(lines[0])
    return lines[0]


def test_detector1_with_options_and_provenance(program, uncal, tmp_path):
    sat_copy = tmp_path / "my_saturation.fits"
    shutil.copy(_ref(program, "saturation"), sat_copy)
    config = tmp_path / "d1.yaml"
    config.write_text("detector1:\n  steps:\n    ramp_fit:\n      suppress_one_group: false\n")
    rate = tmp_path / "x_rate.fits"
    proc = webbcal("detector1", uncal, "-o", rate, "--refs", program / "refs",
                   "--set", "jump.rejection_threshold=5", "--skip", "dark_current",
                   "--override-saturation", sat_copy, "--config", config)
    assert proc.returncode == 0, proc.stderr
    rateints = tmp_path / "x_rateints.fits"
    assert rate.exists() and rateints.exists()
    head = fits.getheader(rate)
    assert head["S_DARK"] == "SKIPPED"
    assert head["S_JUMP"] == head["S_RAMP"] == head["S_SATURA"] == "COMPLETE"
    assert head["R_SATURA"].endswith("my_saturation.fits")
    for key in ("R_MASK", "R_SUPERB", "R_LINEAR", "R_GAIN", "R_READNO"):
        assert head[key].startswith("webbcal_nrca1"), key
    assert "R_DARK" not in head
    assert head["CAL_VER"]
    info = webbcal("info", rate)
    assert info.returncode == 0, info.stderr
    assert "my_saturation.fits" in info.stdout and "sha256:" in info.stdout
    assert any(line.split() == ["S_DARK", "SKIPPED"] for line in info.stdout.splitlines())
    # The parameters used travel with the product (ASDF tree), --config and --set merged.
    from webbcal.io.product import read_product

    record = read_product(rate).tree["meta"]["webbcal"]["provenance"][-1]
    assert record["parameters"]["jump"]["rejection_threshold"] == 5.0
    assert record["parameters"]["ramp_fit"]["suppress_one_group"] is False
    assert record["parameters"]["dark_current"]["skip"] is True
    assert record["parameters"]["saturation"]["n_pix_grow_sat"] == 1


def test_products_open_and_validate_in_stdatamodels(program, uncal, tmp_path):
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    rate = tmp_path / "v_rate.fits"
    proc = webbcal("detector1", uncal, "-o", rate, "--refs", program / "refs")
    assert proc.returncode == 0, proc.stderr
    with datamodels.open(rate) as model:
        assert type(model).__name__ == "ImageModel"
        model.validate()
        assert model.data.shape == (160, 160) and model.meta.cal_step.ramp_fit == "COMPLETE"
        assert model.meta.bunit_data == "DN/s"
    with datamodels.open(tmp_path / "v_rateints.fits") as model:
        assert type(model).__name__ == "CubeModel"
        model.validate()
        assert model.data.shape == (1, 160, 160)


def test_single_steps(program, uncal, tmp_path):
    dq = tmp_path / "x_dq_init.fits"
    assert webbcal("step", "dq_init", uncal, "-o", dq, "--refs", program / "refs").returncode == 0
    sat = tmp_path / "x_saturation.fits"
    proc = webbcal("step", "saturation", dq, "-o", sat, "--refs", program / "refs",
                   "--n-pix-grow-sat", "2")
    assert proc.returncode == 0, proc.stderr
    head = fits.getheader(sat)
    assert head["S_SATURA"] == "COMPLETE" and head["S_DQINIT"] == "COMPLETE"
    fitted = tmp_path / "x_rate.fits"
    proc = webbcal("step", "ramp_fit", sat, "-o", fitted, "--refs", program / "refs")
    assert proc.returncode == 0, proc.stderr
    assert fits.getheader(fitted)["S_RAMP"] == "COMPLETE"
    assert (tmp_path / "x_rateints.fits").exists()
    assert fits.getdata(fitted, "SCI").shape == (160, 160)


def test_python_api_from_readme(program, uncal, tmp_path):
    from webbcal.pipeline.detector1 import run_detector1

    result = run_detector1(uncal, rate_path=tmp_path / "r_rate.fits",
                           rateints_path=tmp_path / "r_rateints.fits", refs_dir=program / "refs",
                           params={"jump": {"rejection_threshold": 5.0}, "dark_current": {"skip": True}})
    assert result.statuses["dark_current"] == "SKIPPED"
    assert result.statuses["ramp_fit"] == "COMPLETE"
    assert (tmp_path / "r_rate.fits").exists()


# --- bad input: one error line, non-zero exit, no output ------------------------------------

def _edited_uncal(uncal: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / uncal.name
    with fits.open(uncal) as hdul:
        edit(hdul)
        hdul.writeto(out, overwrite=True)
    return out


def _run_bad(program, path, tmp_path, *extra):
    rate = tmp_path / "bad_rate.fits"
    proc = webbcal("detector1", path, "-o", rate, "--refs", program / "refs", *extra)
    assert not rate.exists() and not (tmp_path / "bad_rateints.fits").exists()
    assert not list(tmp_path.glob("*.tmp*"))
    return proc


def test_shape_disagrees_with_ngroups(program, uncal, tmp_path):
    """Also through a real process: exit status 2 and the one line on stderr."""
    bad = _edited_uncal(uncal, tmp_path, lambda h: h[0].header.set("NGROUPS", 5))
    rate = tmp_path / "bad_rate.fits"
    proc = webbcal_process("detector1", bad, "-o", rate, "--refs", program / "refs")
    assert proc.returncode == 2
    line = _one_error_line(proc, bad.name, "NGROUPS")
    print(line)
    assert not rate.exists()


def test_shape_disagrees_with_nints(program, uncal, tmp_path):
    bad = _edited_uncal(uncal, tmp_path, lambda h: h[0].header.set("NINTS", 2))
    _one_error_line(_run_bad(program, bad, tmp_path), bad.name, "NINTS")


@pytest.mark.parametrize("keyword", ["NFRAMES", "TGROUP"])
def test_missing_keyword(program, uncal, tmp_path, keyword):
    bad = _edited_uncal(uncal, tmp_path, lambda h: h[0].header.remove(keyword))
    line = _one_error_line(_run_bad(program, bad, tmp_path), str(bad), keyword, "missing")
    # a single step needs them as well (checked before any work, no output)
    proc = webbcal("step", "saturation", bad, "-o", tmp_path / "x_sat.fits", "--refs", program / "refs")
    assert _one_error_line(proc, keyword) == line and not (tmp_path / "x_sat.fits").exists()


def _edited_ref(program, kind, tmp_path, edit) -> Path:
    out = tmp_path / f"edited_{kind}.fits"
    with fits.open(_ref(program, kind)) as hdul:
        edit(hdul)
        hdul.writeto(out, overwrite=True)
    return out


def test_reference_of_wrong_shape(program, uncal, tmp_path):
    def shrink(hdul):
        hdul["SCI"].data = np.ones((100, 100), np.float32)
        for key in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "SUBARRAY"):
            hdul[0].header.remove(key, ignore_missing=True)

    ref = _edited_ref(program, "gain", tmp_path, shrink)
    _one_error_line(_run_bad(program, uncal, tmp_path, "--override-gain", ref), ref.name)


def test_reference_for_another_detector(program, uncal, tmp_path):
    ref = _edited_ref(program, "gain", tmp_path, lambda h: h[0].header.set("DETECTOR", "NRCB1"))
    _one_error_line(_run_bad(program, uncal, tmp_path, "--override-gain", ref), ref.name, "NRCB1")


def test_all_saturated_exposure_gives_no_rate(program, uncal, tmp_path):
    """Official: ramp_fit returns nothing when every pixel saturates in group 0; no rate file."""
    def saturate(hdul):
        hdul["SCI"].data = np.full(hdul["SCI"].data.shape, 65535, np.uint16)

    bad = _edited_uncal(uncal, tmp_path, saturate)
    _one_error_line(_run_bad(program, bad, tmp_path), bad.name, "saturated")


def test_nan_in_gain_reference_gives_the_official_flags(program, uncal, tmp_path):
    """Official result for NaN gains: NO_GAIN_VALUE | DO_NOT_USE and a NaN rate there."""
    def poke(hdul):
        hdul["SCI"].data[100, 100] = np.nan  # full-frame reference; inside SUB160 at (100, 100)

    ref = _edited_ref(program, "gain", tmp_path, poke)
    rate = tmp_path / "n_rate.fits"
    proc = webbcal("detector1", uncal, "-o", rate, "--refs", program / "refs", "--override-gain", ref)
    assert proc.returncode == 0, proc.stderr
    dq = fits.getdata(rate, "DQ")
    sci = fits.getdata(rate, "SCI")
    expected = dqflags.NO_GAIN_VALUE | dqflags.DO_NOT_USE
    assert dq[100, 100] & expected == expected and np.isnan(sci[100, 100])
    assert np.isfinite(sci[100, 102])


def test_nan_in_saturation_reference_gives_no_sat_check(program, uncal, tmp_path):
    def poke(hdul):
        hdul["SCI"].data[50, 60] = np.nan

    ref = _edited_ref(program, "saturation", tmp_path, poke)
    rate = tmp_path / "s_rate.fits"
    proc = webbcal("detector1", uncal, "-o", rate, "--refs", program / "refs",
                   "--override-saturation", ref)
    assert proc.returncode == 0, proc.stderr
    dq = fits.getdata(rate, "DQ")
    assert dq[50, 60] & dqflags.NO_SAT_CHECK
    assert np.isfinite(fits.getdata(rate, "SCI")[50, 60])
