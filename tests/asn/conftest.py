"""Shared helpers: tiny Level-1b exposures (a primary header only) and the official generator."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from astropy.io import fits

# The team's shared/ folder sits beside the checkout (../shared from the project root).
_CANDIDATES = (Path(__file__).resolve().parents[3] / "shared" / "data" / "pools",
               Path("/work/shared/data/pools"))
POOLS = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
VERSION_ID = "20251216t202003"


def make_exposure(directory, *, obs="001", visitgrp="03", exposure=1, detector="nrca1", exp_type="NRC_IMAGE",
                  filter_="F200W", pupil="CLEAR", expspcin=1, program="01243", targname="NGC-1234",
                  subarray="FULL", bkgdtarg=False, instrument="NIRCAM") -> str:
    """Write ``jw<program><obs>001_<visitgrp>101_<exposure>_<detector>_uncal.fits`` (header only)."""
    name = f"jw{program}{obs}001_{visitgrp}101_{exposure:05d}_{detector}_uncal.fits"
    header = fits.Header()
    for key, value in dict(
            FILENAME=name, TELESCOP="JWST", PROGRAM=program, OBSERVTN=obs, VISIT="001", VISITGRP=visitgrp,
            SEQ_ID="1", ACT_ID="01", EXPOSURE=f"{exposure:05d}", INSTRUME=instrument, DETECTOR=detector.upper(),
            CHANNEL="LONG" if "long" in detector else "SHORT", EXP_TYPE=exp_type, FILTER=filter_, PUPIL=pupil,
            SUBARRAY=subarray, TARGNAME=targname, VISITYPE="PRIME_TARGETED_FIXED", EXPSPCIN=expspcin,
            TSOVISIT=False, BKGDTARG=bkgdtarg).items():
        header[key] = value
    fits.PrimaryHDU(header=header).writeto(Path(directory) / name)
    return name


def wfss_program(directory) -> dict:
    """NRC_IMAGE dithers in two filters (SW F200W on A1+B1, LW F356W), two F356W/GRISMR
    grism exposures, and the F356W direct image taken after them; returns the file names."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = {"image": [], "grism": [], "direct": []}
    for exposure in (1, 2):
        for detector in ("nrca1", "nrcb1"):
            names["image"].append(make_exposure(directory, visitgrp="02", exposure=exposure, detector=detector,
                                                filter_="F200W", expspcin=exposure))
    for exposure in (1, 2):
        names["grism"].append(make_exposure(directory, visitgrp="03", exposure=exposure, detector="nrcalong",
                                            exp_type="NRC_WFSS", filter_="F356W", pupil="GRISMR", expspcin=3))
    names["direct"].append(make_exposure(directory, visitgrp="04", exposure=1, detector="nrcalong",
                                         filter_="F356W", expspcin=4))
    for exposure in (2, 3):  # LW dithers of the imaging filter pair
        names["image"].append(make_exposure(directory, visitgrp="02", exposure=exposure, detector="nrcalong",
                                            filter_="F356W", expspcin=exposure))
    return names


def official_associations(pool_path, outdir, version_id=VERSION_ID) -> dict:
    """Run the official generator (jwst.associations.main) on a pool file; {file name: dict}."""
    from jwst.associations.main import Main

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    Main.cli([str(pool_path), "--version-id", version_id, "-p", str(outdir)])
    return {path.name: json.loads(path.read_text()) for path in sorted(outdir.glob("*_asn.json"))}


def official_pool_from_directory(directory, pool_path):
    """The official mkpool on the *_uncal.fits files of a directory (run from inside it so
    that FILENAME holds bare names, as the workflow uses)."""
    from jwst.associations.mkpool import mkpool

    cwd = os.getcwd()
    try:
        os.chdir(directory)
        pool = mkpool(sorted(Path(".").glob("*_uncal.fits")))
    finally:
        os.chdir(cwd)
    pool.write(pool_path, overwrite=True)
    return pool_path


def comparable(asn: dict) -> dict:
    """An association dict without what differs by design between two generators:
    ``code_version`` (names the generating software) and ``constraints`` (the official rule
    engine's textual dump of its internal constraint objects, informational only)."""
    return {key: value for key, value in asn.items() if key not in ("code_version", "constraints")}


@pytest.fixture
def wfss_dir(tmp_path):
    directory = tmp_path / "uncal"
    names = wfss_program(directory)
    return directory, names


POOL_COLUMNS = ("filename", "program", "obs_num", "visitype", "exp_type", "instrume", "detector", "channel",
                "targetid", "pntgtype", "expspcin", "filter", "pupil", "subarray", "grating", "fxd_slit", "band",
                "asn_candidate", "exposerr", "is_psf", "is_imprt", "bkgdtarg", "tsovisit", "dms_note")


def pool_row(*, obs, visitgrp, exposure, detector, exp_type, filter_, pupil, subarray="full", targetid="1",
             bkgdtarg="f", expspcin="1", extra_candidates=(), exposerr="null", program="1243") -> dict:
    """One row of an official-format pool (lower-case strings, "null" for unset)."""
    candidates = [(f"o{obs:03d}", "observation"), *extra_candidates]
    return {
        "filename": f"jw{program:0>5}{obs:03d}001_{visitgrp:02d}101_{exposure:05d}_{detector}_uncal.fits",
        "program": program, "obs_num": str(obs), "visitype": "prime_targeted_fixed", "exp_type": exp_type,
        "instrume": "nircam", "detector": detector, "channel": "long" if "long" in detector else "short",
        "targetid": targetid, "pntgtype": "target_acquisition" if exp_type == "nrc_tacq" else "science",
        "expspcin": expspcin, "filter": filter_, "pupil": pupil, "subarray": subarray, "grating": "null",
        "fxd_slit": "null", "band": "null", "asn_candidate": str(candidates), "exposerr": exposerr,
        "is_psf": "null", "is_imprt": "null", "bkgdtarg": bkgdtarg, "tsovisit": "f", "dms_note": "null"}


def write_pool(rows, path) -> Path:
    lines = ["|".join(POOL_COLUMNS)] + ["|".join(row[c] for c in POOL_COLUMNS) for row in rows]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
