"""webbcal Image2 against the official jwst 3.0 Image2Pipeline, run offline on the same
rate and the same reference files (slow: a child interpreter imports jwst).

``prepare_official_image2`` is also what ``benchmarks/image2.py`` runs. The child uses
the offline CRDS environment of ``tests/oracle/jwst_offline.py``; every reference type of
every Image2 step is overridden (a file or "N/A").
"""

from __future__ import annotations

import json
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.oracle.jwst_offline import CHILD_PRELUDE, ChildJob, child_environment
from tests.pipeline.test_image2_support import image2_data  # noqa: F401

# Reference types of the Image2 steps in jwst 3.0.0 (``reference_file_types``).
IMAGE2_REFTYPES = {
    "bkg_subtract": ("bkg", "wavelengthrange"),
    "assign_wcs": ("distortion", "filteroffset", "specwcs", "regions", "wavelengthrange", "camera",
                   "chromcorr", "collimator", "disperser", "fore", "fpa", "msa", "ote", "ifupost",
                   "ifufore", "ifuslicer"),
    "flat_field": ("flat", "fflat", "sflat", "dflat"),
    "photom": ("photom", "area"),
    "resample": (),
}
NIRCAM_IMAGING_REFTYPES = ("distortion", "filteroffset", "flat", "photom", "area")

_CHILD = CHILD_PRELUDE + textwrap.dedent('''
    t0 = time.perf_counter()
    from jwst.pipeline import Image2Pipeline
    t1 = time.perf_counter()
    Image2Pipeline.call(request["input"], steps=request["steps"], output_dir=request["output_dir"],
                        save_results=True)
    t2 = time.perf_counter()
    import glob, os
    outputs = {os.path.basename(p).rsplit("_", 1)[-1].removesuffix(".fits"): p
               for p in glob.glob(os.path.join(request["output_dir"], "*.fits"))}
    json.dump({"outputs": outputs, "step_seconds": seconds, "import_seconds": t1 - t0,
               "call_seconds": t2 - t1}, open(request["report"], "w"))
''')


def image2_step_parameters(refs: dict) -> dict:
    steps = {}
    for step, reftypes in IMAGE2_REFTYPES.items():
        steps[step] = {f"override_{r}": str(refs[r]) if r in refs else "N/A" for r in reftypes}
    return steps


def prepare_official_image2(rate, refs: dict, output_dir) -> tuple[ChildJob, dict]:
    """The child job running ``Image2Pipeline.call`` on ``rate``; also the expected outputs."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="jwst_image2_", dir=output_dir))
    script = scratch / "child.py"
    script.write_text(_CHILD)
    request = {"input": str(Path(rate).resolve()), "output_dir": str(output_dir),
               "steps": image2_step_parameters(refs), "report": str(scratch / "report.json")}
    (scratch / "request.json").write_text(json.dumps(request, indent=1))
    job = ChildJob(argv=[sys.executable, str(script), str(scratch / "request.json")],
                   env=child_environment(scratch), report_path=scratch / "report.json",
                   log_path=scratch / "jwst.log")
    root = Path(rate).name.removesuffix(".fits").removesuffix("_rate")
    return job, {"cal": output_dir / f"{root}_cal.fits", "i2d": output_dir / f"{root}_i2d.fits"}


def selected_references(refs_dir, rate) -> dict:
    from astropy.io import fits

    from webbcal.refs import RefCache

    header = fits.getheader(rate)
    cache = RefCache(refs_dir)
    return {r: cache.select(r, header) for r in NIRCAM_IMAGING_REFTYPES}


@pytest.mark.slow
def test_cal_and_wcs_agree_with_the_official_pipeline(image2_data, tmp_path):
    import warnings

    from stdatamodels.jwst import datamodels

    from webbcal.pipeline.image2 import run_image2

    d = image2_data
    refs = selected_references(d.refs, d.rate)
    job, expected = prepare_official_image2(d.rate, refs, tmp_path / "official")
    job.run()
    ours_path = tmp_path / "ours" / f"{d.name}_cal.fits"
    ours_path.parent.mkdir()
    params = {step: {f"override_{r}": str(refs[r]) for r in IMAGE2_REFTYPES[step] if r in refs}
              for step in ("assign_wcs", "flat_field", "photom")}
    params["resample"] = {"pixmap_stepsize": 1.0, "pixmap_order": 1}  # the official exact pixel map
    run_image2(d.rate, cal_path=ours_path, i2d_path=tmp_path / "ours" / f"{d.name}_i2d.fits",
               refs_dir=d.refs, params=params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, ours = datamodels.open(str(expected["cal"])), datamodels.open(str(ours_path))
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat", "area"):
        a, b = getattr(ours, name), getattr(theirs, name)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_allclose(a, b, rtol=2 * np.finfo(np.float32).eps, atol=0, equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(ours.dq, theirs.dq)
    assert ours.meta.photometry.conversion_megajanskys == pytest.approx(
        theirs.meta.photometry.conversion_megajanskys, rel=1e-7)
    ny, nx = ours.data.shape
    y, x = np.mgrid[-0.5:ny:16.0, -0.5:nx:16.0]
    a = np.array(ours.meta.wcs(x, y))
    b = np.array(theirs.meta.wcs(x, y))
    sep_mas = np.hypot((a[0] - b[0]) * np.cos(np.deg2rad(a[1])), a[1] - b[1]) * 3.6e6
    assert sep_mas.max() < 1.0
    assert ours.meta.wcsinfo.s_region == theirs.meta.wcsinfo.s_region
    # the single-exposure i2d: same grid, same drizzle; equal to a few float32 ulp (bit-identical
    # on the full-frame benchmark; a handful of subarray pixels differ in the last bits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_i2d = datamodels.open(str(expected["i2d"]))
        ours_i2d = datamodels.open(str(tmp_path / "ours" / f"{d.name}_i2d.fits"))
    assert ours_i2d.data.shape == theirs_i2d.data.shape
    for name in ("data", "err", "wht", "var_rnoise", "var_poisson", "var_flat"):
        np.testing.assert_allclose(getattr(ours_i2d, name), getattr(theirs_i2d, name),
                                   rtol=1e-6, atol=0, equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(ours_i2d.con, theirs_i2d.con)
