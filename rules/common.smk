# Configuration checks, input functions and path helpers shared by every rule file.
# Rules never hold lambdas: what an input or parameter is comes from a named function here.

import json
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

from webbcal import config as webbcal_config
from webbcal.errors import WebbcalError
from webbcal.io.atomic import TEMP_PREFIX
from webbcal.preview.run_info import software_versions, write_run_info


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
    spectrum=r"[^/]+",


def product(name):
    """Path of a product under output_dir."""
    return str(Path(config["output_dir"]) / name)


def log_file(name):
    return str(Path(config["output_dir"]) / "logs" / name)


# Shell rules run the checkout's webbcal (`python -m webbcal...`), as scripts/ do, also
# where the package is not installed (a --use-conda env holds only its dependencies).
# Jobs inherit this environment, and a cluster job re-reads this file, so it holds there too.
os.environ.update(PYTHONPATH=os.pathsep.join(
    dict.fromkeys(filter(None, [workflow.basedir, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]))
))


# ---------------------------------------------------------------- inputs


def simulating():
    """No input_dir: the workflow calibrates its own simulated program."""
    return not config["input_dir"]


def simulation_dir():
    return product("simulation")


def simulation_settings():
    """Simulator options given in config; null ones are left to the preset.

    In the order of the default configuration, whatever the order of the config file:
    Snakemake compares params as text, and the same options listed in another order must
    not rerun the whole program.
    """
    given = config["simulate"]
    return {k: given[k] for k in webbcal_config.default_config()["simulate"]
            if k != "seed" and given.get(k) is not None}


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


def reference_envvars():
    """The variables naming the reference cache when the config does not ($WEBBCAL_REFS,
    else $CRDS_PATH): those set are declared, so that cluster jobs receive them too."""
    if config["refs_dir"] or simulating():
        return []
    return [name for name in ("WEBBCAL_REFS", "CRDS_PATH") if os.environ.get(name)]


envvars:
    *reference_envvars(),


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
    # a calibrated ramp (float32 SCI plus GROUPDQ) is ~2.5x its uint16 uncal
    raw, scale = (input.uncal, 1.0) if "uncal" in input.keys() else (input.ramp, 1 / 2.5)
    size_mb = scale * Path(raw).stat().st_size / 1e6 if Path(raw).exists() else 0.0
    return int((500 + 18 * size_mb) * attempt)


def keeps_calibrated_ramp():
    return bool(config["detector1"]["save_calibrated_ramp"])


# Where a kept calibrated ramp splits Detector1: the steps from jump on are fitted from it.
DETECTOR1_FIT_STEPS = ("jump", "persistence", "ramp_fit", "gain_scale")


def detector1_ramp_params():
    """The ramp job: every step before jump (jump onward skipped, redone from the ramp)."""
    steps = detector1_step_params()
    return {**{k: v for k, v in steps.items() if k not in DETECTOR1_FIT_STEPS},
            **{k: {"skip": True} for k in DETECTOR1_FIT_STEPS}}


def detector1_fit_params():
    """The fit job: jump, persistence, ramp_fit and gain_scale, from the calibrated ramp."""
    return {k: v for k, v in detector1_step_params().items() if k in DETECTOR1_FIT_STEPS}


def detector1_ramp_references(wildcards):
    return webbcal_config.planned_references(uncal_file(wildcards), references_dir(), detector1_ramp_params())


def detector1_fit_references(wildcards):
    return webbcal_config.planned_references(uncal_file(wildcards), references_dir(), detector1_fit_params())


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


# Associations are fixed once their directory exists (given, simulated or generated by the
# checkpoint), so each kind is read once per Snakemake process, not once per job.
_ASSOCIATIONS = {}


def associations_of(kind):
    """Level-2/3 product name -> the ``kind`` (image3, spec2) association file making it."""
    from webbcal.asn import read_association

    folder = association_dir()
    key = (str(folder), kind)
    if key not in _ASSOCIATIONS:
        found = {}
        for path in sorted(folder.glob(f"*_{kind}_*_asn.json")):
            for item in read_association(path).products:
                if item.name in found:
                    raise WebbcalError(path, f"product {item.name} is also made by {found[item.name].name}")
                found[item.name] = path
        _ASSOCIATIONS[key] = found
    return _ASSOCIATIONS[key]


def image3_associations():
    """Level-3 product name -> its image3 association file."""
    return associations_of("image3")


def exposure_root(file_name):
    """jw..._nrca1_cal.fits -> jw..._nrca1: the exposure a member file comes from."""
    return Path(file_name).name.removesuffix(".fits").rpartition("_")[0]


def check_given_associations():
    """Stop before any job when the config's associations cannot run: a product that two
    associations make, or a science member that is not one of the input exposures."""
    from webbcal.asn import read_association

    folder = Path(config["asn_dir"])
    if not folder.is_dir():
        raise WebbcalError(folder, "association directory does not exist")
    known, made_by = set(exposures()), {}
    for path in sorted(folder.glob("*_asn.json")):
        for item in read_association(path).products:
            if item.name in made_by:
                raise WebbcalError(path, f"product {item.name} is also made by {made_by[item.name].name}")
            made_by[item.name] = path
            for member in item.members_of_type("science"):
                if exposure_root(member.expname) not in known:
                    raise WebbcalError(path, f"member {member.expname}: no exposure "
                                             f"{exposure_root(member.expname)}_uncal.fits in {uncal_dir()}")


# Given associations are known now: check them all before the DAG is built.
if config["asn_dir"] and not simulating():
    try:
        check_given_associations()
    except WebbcalError as error:
        stop(error)


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


def image3_mosaic_params():
    """The mosaic job's parameters: every image3 step but source_catalog (its own job)."""
    return {**image3_step_params(), "source_catalog": {"skip": True}}


def source_catalog_params():
    return {"source_catalog": image3_step_params()["source_catalog"]}


def makes_catalogs():
    return not image3_step_params()["source_catalog"].get("skip", False)


def image3_mem_mb(wildcards, input, attempt):
    """Measured 686 MB peak for 4 full-frame members, nearly flat in their number."""
    return int(1500 * attempt)


# ---------------------------------------------------------------- spec2 (WFSS)


def spec2_associations():
    """Level-2 product name (the grism exposure) -> its spec2 association file."""
    return associations_of("spec2")


SPEC2_EXP_TYPES = ("NRC_WFSS",)


def spec2_association_of(exposure):
    """The spec2 association making this exposure's cal, or None.

    Only a grism exposure is looked up: an imaging exposure is Image2's at once, without
    waiting for the associations (a pending checkpoint would make both rules candidates)."""
    if exposure_type(exposure) not in SPEC2_EXP_TYPES:
        return None
    return spec2_associations().get(exposure)


def spec2_member(wildcards, exptype):
    """The output_dir file of the association's ``exptype`` member (rate or catalog).

    For an exposure no spec2 association names (an imaging exposure) this is a path no
    rule makes, so Snakemake leaves its cal to rule image2."""
    from webbcal.asn import read_association

    path = spec2_association_of(wildcards.exposure)
    if path is None:
        return product(f"logs/spec2/no-spec2-association-for-{wildcards.exposure}")
    item = next(p for p in read_association(path).products if p.name == wildcards.exposure)
    members = item.members_of_type(exptype)
    if len(members) != 1:
        raise WebbcalError(path, f"product {item.name} has {len(members)} {exptype} members")
    return product(Path(members[0].expname).name)


def spec2_association(wildcards):
    path = spec2_association_of(wildcards.exposure)
    return str(path) if path else product(f"logs/spec2/no-spec2-association-for-{wildcards.exposure}")


def spec2_rate(wildcards):
    return spec2_member(wildcards, "science")


def spec2_catalog(wildcards):
    return spec2_member(wildcards, "sourcecat")


def spec2_step_params():
    """What Spec2 products depend on: every run step's parameters and overrides."""
    return webbcal_config.stage_params(config, "spec2")


def spec2_references(wildcards):
    """The reference files this grism exposure's Spec2 run reads (rerun when one is replaced)."""
    if spec2_association_of(wildcards.exposure) is None:
        return []
    return webbcal_config.planned_references(
        uncal_file(wildcards), references_dir(), spec2_step_params(), stage="spec2"
    )


def spec2_mem_mb(wildcards, input, attempt):
    """Measured peak ~0.9 GB for a full-frame grism rate with 100 sources; 50 % margin,
    doubled on each retry."""
    return int(1400 * attempt)


def spec2_makes_spectra():
    """extract_1d runs unless the config skips it (then there is no x1d)."""
    return not config["spec2"]["steps"]["extract_1d"]["skip"]


def spec2_outputs():
    """cal, plus x1d when extract_1d runs."""
    outputs = {"cal": product("{exposure}_cal.fits")}
    if spec2_makes_spectra():
        outputs["x1d"] = product("{exposure}_x1d.fits")
    return outputs


def all_spec2_files(wildcards):
    """cal (and x1d) of every spec2 association's grism exposure."""
    suffixes = ("cal", "x1d") if spec2_makes_spectra() else ("cal",)
    return [product(f"{name}_{suffix}.fits") for name in spec2_associations() for suffix in suffixes]


# ---------------------------------------------------------------- targets


def all_rate_files(wildcards):
    return [product(f"{name}_rate.fits") for name in exposures()]


def all_mosaic_files(wildcards):
    """i2d, catalog and segmentation map of every image3 association."""
    suffixes = ("i2d.fits", "cat.ecsv", "segm.fits") if makes_catalogs() else ("i2d.fits",)
    return [product(f"{name}_{suffix}") for name in image3_associations() for suffix in suffixes]


def all_cal_files(wildcards):
    """cal and i2d of every imaging exposure (grism exposures go to Spec2, not Image2)."""
    names = [n for n in exposures() if exposure_type(n) in IMAGING_EXP_TYPES]
    return [product(f"{n}_{suffix}.fits") for n in names for suffix in ("cal", "i2d")]


# ---------------------------------------------------------------- previews and report

# Target functions whose products get a preview in `rule all`.
PREVIEWED_TARGETS = [all_rate_files, all_cal_files, all_mosaic_files, all_spec2_files]

GRISM_EXP_TYPES = ("NRC_WFSS", "NRC_TSGRISM")


def preview_of(path):
    """The preview PNG of a product path, or None for kinds that have none (rateints,
    an exposure's own i2d, catalogs, segmentation maps)."""
    name = Path(path).name
    mosaic = re.match(r"jw\d{5}-", name) is not None
    if name.endswith(("_rate.fits", "_cal.fits", "_x1d.fits")) or (mosaic and name.endswith("_i2d.fits")):
        return str(Path(path).with_suffix(".png"))
    return None


def previews_wanted():
    """config report.previews."""
    return bool(config["report"]["previews"])


def all_preview_files(wildcards):
    previews = [product("report/run_info.html")]
    for targets in PREVIEWED_TARGETS if previews_wanted() else ():
        previews += [png for png in map(preview_of, targets(wildcards)) if png]
    return sorted(set(previews))


def cal_category(wildcards):
    """A grism exposure's cal is Spec2's (slits), an imaging one Image2's."""
    return "3. Spec2" if exposure_type(wildcards.exposure) in GRISM_EXP_TYPES else "2. Image2"


def run_parameters():
    """Every configured stage's parameters, as the run page lists them."""
    stages = [s for s in webbcal_config.stages() if s in config]
    return json.dumps({stage: webbcal_config.stage_params(config, stage) for stage in stages})
