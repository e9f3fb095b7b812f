# Configuration checks, input functions and path helpers shared by every rule file.
# Rules never hold lambdas: what an input or parameter is comes from a named function here.

import os
import sys
from pathlib import Path

from snakemake.utils import validate

from webbcal import config as webbcal_config
from webbcal.errors import WebbcalError
from webbcal.io.atomic import TEMP_PREFIX


def config_source():
    """The file a configuration error is reported against."""
    given = list(workflow.overwrite_configfiles or [])
    return given[-1] if given else "config/config.yaml"


def stop(error):
    """End the run with the one-line message webbcal prints everywhere (no traceback)."""
    sys.exit(f"webbcal: error: {error}")


# A one-line error naming the bad key first, then the conventional schema validation
# (which also fills any section a partial --configfile left out with its defaults).
try:
    webbcal_config.check_config(config, config_source())
except WebbcalError as error:
    stop(error)
validate(config, schema="../config/schema.yaml")


# Level-3 products are named jw<program>-<acid>_...: an exposure name never has that form,
# so an exposure's i2d and a mosaic's i2d cannot be confused.
wildcard_constraints:
    exposure=r"(?!jw\d{5}-)[^/]+",
    mosaic=r"jw\d{5}-[^/]+",


def product(name):
    """Path of a product under output_dir."""
    return str(Path(config["output_dir"]) / name)


def log_file(name):
    return str(Path(config["output_dir"]) / "logs" / name)


# ---------------------------------------------------------------- inputs


def simulating():
    """No input_dir: the workflow calibrates its own simulated program."""
    return not config["input_dir"]


def simulation_dir():
    return product("simulation")


def simulation_settings():
    """Simulator options given in config; null ones are left to the preset."""
    options = {k: v for k, v in config["simulate"].items() if k != "seed"}
    return {k: v for k, v in options.items() if v is not None}


def uncal_dir():
    """Where the *_uncal.fits files are; waits for the simulation checkpoint if needed."""
    if simulating():
        return Path(checkpoints.simulate.get().output.program) / "uncal"
    return Path(config["input_dir"])


def exposures():
    """Exposure names (file name without _uncal.fits), from what exists on disk."""
    folder = uncal_dir()
    if not folder.is_dir():
        raise WebbcalError(folder, "input directory does not exist")
    names = sorted(p.name.removesuffix("_uncal.fits") for p in folder.glob("*_uncal.fits"))
    if not names:
        raise WebbcalError(folder, "no exposures (*_uncal.fits) in the input directory")
    return names


# Given exposures are known now: a missing or empty input_dir stops the run here, in one
# line, not later as a traceback of an input function.
if not simulating():
    try:
        exposures()
    except WebbcalError as error:
        stop(error)


def uncal_file(wildcards):
    return str(uncal_dir() / f"{wildcards.exposure}_uncal.fits")


def references_dir():
    """The reference cache: config, else the simulation's, else $WEBBCAL_REFS.

    Read with os.environ.get, not declared with envvars: (which would make it mandatory
    even for the simulated default program). Empty lets webbcal fall back to $CRDS_PATH.
    """
    if config["refs_dir"]:
        return config["refs_dir"]
    if simulating():
        return str(Path(simulation_dir()) / "refs")
    return os.environ.get("WEBBCAL_REFS", "")


def detector1_step_params():
    """What Detector1 products depend on: every run step's parameters and overrides."""
    return webbcal_config.stage_params(config, "detector1")


def detector1_references(wildcards):
    """The reference files this exposure's Detector1 run reads (rerun when one is replaced)."""
    return webbcal_config.planned_references(
        uncal_file(wildcards), references_dir(), detector1_step_params()
    )


def detector1_mem_mb(wildcards, input, attempt):
    """Peak memory grows with the raw exposure: measured 230 MB for SUB640 x 6 groups
    (a 4.9 MB uncal) and 1.2 GB for full frame x 10 groups (84 MB); that line with 50 %
    margin, doubled on each retry."""
    uncal = Path(input.uncal)
    size_mb = uncal.stat().st_size / 1e6 if uncal.exists() else 0.0
    return int((500 + 18 * size_mb) * attempt)


def detector1_outputs():
    """rate and rateints, plus the calibrated ramp when the config keeps it."""
    outputs = {
        "rate": product("{exposure}_rate.fits"),
        "rateints": product("{exposure}_rateints.fits"),
    }
    if config["detector1"]["save_calibrated_ramp"]:
        outputs["ramp"] = product("{exposure}_ramp.fits")
    return outputs


def image2_step_params():
    """What Image2 products depend on: every run step's parameters and overrides."""
    return webbcal_config.stage_params(config, "image2")


def image2_references(wildcards):
    """The reference files this exposure's Image2 run reads (selected from its raw header,
    which carries the same selectors as its rate)."""
    return webbcal_config.planned_references(
        uncal_file(wildcards), references_dir(), image2_step_params()
    )


def image2_mem_mb(wildcards, input, attempt):
    """Measured peak 539 MB for a full-frame rate (official: 1072 MB); 50 % margin,
    doubled on each retry."""
    return int(800 * attempt)


IMAGING_EXP_TYPES = ("NRC_IMAGE",)


def exposure_type(name):
    """EXP_TYPE from the raw exposure's primary header ('' if it cannot be read)."""
    try:
        header = webbcal_config.exposure_header(uncal_dir() / f"{name}_uncal.fits")
    except (OSError, ValueError):
        return ""
    return str(header.get("EXP_TYPE", "")).upper()


def remove_stale_temporaries():
    """Delete the temporary files (.webbcal-tmp-*) that killed jobs left under output_dir.

    A job killed mid-write (SIGKILL, out of memory, node lost) cannot remove its own.
    Snakemake's lock on these outputs means no other run writes there now: any such
    file is debris, and its product is rerun as incomplete.
    """
    root = Path(config["output_dir"])
    if root.is_dir():
        for debris in root.rglob(f"{TEMP_PREFIX}*"):
            debris.unlink(missing_ok=True)


onstart:
    remove_stale_temporaries()


def association_dir():
    """Association files: asn_dir, else the simulation's, else generated (checkpoint)."""
    if config["asn_dir"]:
        return Path(config["asn_dir"])
    if simulating():
        return Path(checkpoints.simulate.get().output.program) / "asn"
    return Path(checkpoints.associations.get().output.asn)


def image3_associations():
    """Level-3 product name -> its image3 association file."""
    from webbcal.asn import read_association

    found = {}
    for path in sorted(association_dir().glob("*_image3_*_asn.json")):
        for item in read_association(path).products:
            if item.name in found:
                raise WebbcalError(path, f"product {item.name} is also made by {found[item.name].name}")
            found[item.name] = path
    return found


def image3_association(wildcards):
    return str(image3_associations()[wildcards.mosaic])


def image3_member_cals(wildcards):
    """The cal files of the association's science members (the DAG follows the asn)."""
    from webbcal.asn import read_association

    asn = read_association(image3_association(wildcards))
    return [product(Path(m.expname).name) for m in asn.members_of_type("science")]


def uncal_directory_for_associations(wildcards):
    return str(Path(config["input_dir"]))


def image3_step_params():
    return webbcal_config.stage_params(config, "image3")


def image3_mem_mb(wildcards, input, attempt):
    """Measured 686 MB peak for 4 full-frame members, nearly flat in their number."""
    return int(1500 * attempt)


# ---------------------------------------------------------------- targets


def all_rate_files(wildcards):
    return [product(f"{name}_rate.fits") for name in exposures()]


def all_mosaic_files(wildcards):
    """i2d, catalog and segmentation map of every image3 association."""
    return [product(f"{name}_{suffix}") for name in image3_associations()
            for suffix in ("i2d.fits", "cat.ecsv", "segm.fits")]


def all_cal_files(wildcards):
    """cal and i2d of every imaging exposure (grism exposures go to Spec2, not Image2)."""
    names = [n for n in exposures() if exposure_type(n) in IMAGING_EXP_TYPES]
    return [product(f"{n}_{suffix}.fits") for n in names for suffix in ("cal", "i2d")]
