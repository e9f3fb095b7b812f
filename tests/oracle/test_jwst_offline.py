"""The offline harness itself: the stub CRDS cache is complete and jwst never needs a server.

The end-to-end check runs the official Detector1 on a 32×32, 4-group hand-made exposure in a
child process whose sockets refuse to connect; it passing proves the oracle is offline.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from .jwst_offline import (
    CRDS_CONTEXT,
    DETECTOR1_REFTYPES,
    MIRI_ONLY_STEPS,
    detector1_step_parameters,
    offline_environment,
    run_official_detector1,
    run_official_step,
)
from .tiny_exposure import write_tiny_exposure

pytest.importorskip("jwst")

NIRCAM_REFS = ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise")


def test_stub_crds_cache_has_every_server_config_key(tmp_path):
    env = offline_environment(tmp_path)
    config = ast.literal_eval(
        (tmp_path / "crds_stub_cache" / "config" / "jwst" / "server_config").read_text())
    assert config["observatory"] == "jwst"
    for key in ("operational_context", "latest_context", "edit_context", "versions_context"):
        assert config[key] == CRDS_CONTEXT
    assert config["force_remote_mode"] is False and config["bad_files_list"] == []
    assert env["CRDS_MODE"] == "local" and env["STPIPE_DISABLE_CRDS_STEPPARS"] == "true"
    assert env["CRDS_PATH"] == str(tmp_path / "crds_stub_cache")


def test_every_running_step_has_every_reftype_overridden():
    refs = {r: f"/refs/{r}.fits" for r in NIRCAM_REFS}
    steps = detector1_step_parameters(refs, save_intermediates=True)
    for step, reftypes in DETECTOR1_REFTYPES.items():
        if step in MIRI_ONLY_STEPS:
            assert steps[step] == {"skip": True}
            continue
        for reftype in reftypes:
            assert steps[step][f"override_{reftype}"] in (refs.get(reftype), "N/A")
    assert steps["refpix"]["override_sirskernel"] == "N/A"
    assert steps["jump"]["maximum_cores"] == "1" and steps["ramp_fit"]["maximum_cores"] == "1"
    assert steps["dq_init"]["save_results"] is True and "save_results" not in steps["ramp_fit"]


def test_missing_required_reference_is_refused():
    with pytest.raises(ValueError, match="needs a mask reference"):
        detector1_step_parameters({r: "x.fits" for r in NIRCAM_REFS if r != "mask"})


def test_network_guard_refuses_connections():
    """The guard the child installs before importing jwst does stop a connection attempt."""
    code = ("import sys, urllib.request; sys.path.insert(0, sys.argv[1]); "
            "import jwst_offline; jwst_offline._forbid_network(); "
            "urllib.request.urlopen('http://127.0.0.1:9/', timeout=2)")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "offline oracle: network connection to" in done.stderr


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_exposure(tmp_path_factory.mktemp("tiny"), nx=32, ny=32, ngroups=4)


@pytest.fixture(scope="module")
def official(tiny, tmp_path_factory):
    return run_official_detector1(tiny.uncal, tiny.refs, tmp_path_factory.mktemp("official"),
                                  save_intermediates=True)


def test_official_detector1_runs_offline_and_fits_the_truth(tiny, official):
    run = official
    assert {"rate", "rateints", "dq_init", "saturation", "superbias", "refpix", "linearity",
            "dark_current", "jump"} <= set(run.outputs)
    header = fits.getheader(run.outputs["rate"])
    for key in ("S_DQINIT", "S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR", "S_DARK",
                "S_JUMP", "S_RAMP"):
        assert header[key] == "COMPLETE", key
    assert header["S_IPC"] == "SKIPPED"  # "N/A" override
    assert header["R_MASK"].endswith("tiny_mask.fits")
    # each step's time was parsed from the log
    assert {"dq_init", "jump", "ramp_fit"} <= set(run.step_seconds)

    rate = fits.getdata(run.outputs["rate"], "SCI")
    dq = fits.getdata(run.outputs["rate"], "DQ")
    err = fits.getdata(run.outputs["rate"], "ERR")
    science = ~tiny.meta["refpix"] & ~tiny.bad_pixels & ~tiny.jump_pixels
    pull = (rate - tiny.truth_rate)[science] / err[science]
    assert np.all(np.isnan(rate[tiny.bad_pixels]))
    assert np.all(dq[tiny.bad_pixels] & 1)
    # measured: median pull -0.01, robust sigma 0.985 over 775 pixels
    assert abs(np.nanmedian(pull)) < 0.2
    assert 0.85 < 1.4826 * np.nanmedian(np.abs(pull - np.nanmedian(pull))) < 1.15


def test_official_single_step_matches_the_pipeline_intermediate(tiny, official, tmp_path):
    run = official
    alone = run_official_step("SaturationStep", run.outputs["dq_init"], tiny.refs,
                              tmp_path / "solo" / "tiny_saturation.fits")
    assert set(alone.outputs) == {"saturation"} and "saturation" in alone.step_seconds
    for ext in ("GROUPDQ", "PIXELDQ", "SCI"):
        np.testing.assert_array_equal(fits.getdata(alone.outputs["saturation"], ext),
                                      fits.getdata(run.outputs["saturation"], ext))


@pytest.mark.slow
def test_official_ramp_fit_alone_writes_rate_and_rateints(tiny, official, tmp_path):
    alone = run_official_step("ramp_fit", official.outputs["jump"], tiny.refs,
                              tmp_path / "tiny_rate.fits")
    assert set(alone.outputs) == {"rate", "rateints"}
    assert fits.getval(alone.outputs["rateints"], "DATAMODL") == "CubeModel"
    np.testing.assert_array_equal(fits.getdata(alone.outputs["rate"], "SCI"),
                                  fits.getdata(official.outputs["rate"], "SCI"))
