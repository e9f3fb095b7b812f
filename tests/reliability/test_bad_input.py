"""The bad-input suite: every entry point, fed malformed input, fails cleanly.

Each row of ``CASES`` builds one malformed input and says which entry point gets it.
For every case:

* the exit code is non-zero;
* stderr holds exactly one line that is not a log record: ``webbcal: error: <file>: <problem>``
  naming the file (or option) at fault and matching the expected problem; no traceback;
* no file exists at the product's path, and no temporary file (``.webbcal-tmp-*``) is left.

Cases run in this process (fast); ``test_real_process`` reruns one case per entry point
as a real process, as a user would meet it. Cases that expose a gap in a module owned by
someone else are ``xfail(strict=True)`` with the reason: they document the gap and will
turn red (XPASS) when it is closed, so the mark is removed then.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from astropy.io import fits

from .helpers import (Outcome, load_script, run_in_process, run_process, snakemake_command,
                      temporaries)

SNAKEMAKE_CHATTER = ("Using workflow specific profile", "Assuming unrestricted shared filesystem")


@dataclass
class Invocation:
    entry: str  # "webbcal", "detector1.py", "simulate.py" or "snakemake"
    argv: list[str]
    names: str  # text the error line must contain (the file or option at fault)
    problem: str  # regular expression the error line must match
    outputs: list[Path] = field(default_factory=list)  # must not exist afterwards
    patch: Callable[[], contextlib.AbstractContextManager] | None = None  # fault injection
    log: Path | None = None  # snakemake job failures: the error line is in the rule's log


@dataclass
class Context:
    tmp: Path
    program: Path
    uncal: Path
    products: Path | None
    full_disk: Path | None

    @property
    def refs(self) -> Path:
        return self.program / "refs"

    def out(self, name: str) -> Path:
        return self.tmp / "out" / name

    def rate_outputs(self, stem: str = "x") -> list[Path]:
        return [self.out(f"{stem}_rate.fits"), self.out(f"{stem}_rateints.fits")]

    def detector1(self, uncal: Path, *extra: str, refs: Path | None = None) -> list[str]:
        return ["detector1", str(uncal), "--refs", str(refs or self.refs),
                "-o", str(self.out("x_rate.fits")), *extra]

    def copy(self, source: Path, name: str) -> Path:
        target = self.tmp / name
        shutil.copy(source, target)
        return target

    def edited(self, source: Path, name: str, edit: Callable[[fits.HDUList], None]) -> Path:
        target = self.copy(source, name)
        with fits.open(target, mode="update") as hdul:
            edit(hdul)
        return target

    def cut(self, name: str, where: Callable[[list], int]) -> Path:
        """The uncal cut short at an offset computed from its HDU layout."""
        with fits.open(self.uncal) as hdul:
            layout = [(hdul.fileinfo(i)["hdrLoc"], hdul.fileinfo(i)["datLoc"], hdul.fileinfo(i)["datSpan"])
                      for i in range(len(hdul))]
        target = self.tmp / name
        target.write_bytes(self.uncal.read_bytes()[: where(layout)])
        return target

    def refs_copy(self) -> Path:
        target = self.tmp / "refs"
        shutil.copytree(self.refs, target)
        return target

    def ref(self, reftype: str) -> Path:
        [path] = [p for p in self.refs.glob(f"webbcal_*_{reftype}.fits")]
        return path


def _set(key, value, hdu=0):
    return lambda hdul: hdul[hdu].header.set(key, value)


def _replace_hdu(name, data_of):
    def edit(hdul):
        old = hdul[name]
        hdul[name] = fits.ImageHDU(data_of(old.data), header=old.header, name=name)
    return edit


def _fill(name, value, where=(slice(None),)):
    def edit(hdul):
        data = hdul[name].data.copy()
        data[where] = value
        hdul[name].data = data
    return edit


@contextlib.contextmanager
def _disk_full_during_fits_writes():
    """Every FITS write dies as a full disk does: the primary HDU reaches the disk, then ENOSPC."""
    real = fits.HDUList.writeto

    def fail_midway(self, fileobj, *args, **kwargs):
        real(fits.HDUList([self[0]]), fileobj, overwrite=True)
        raise OSError(errno.ENOSPC, "No space left on device|Not enough space")

    fits.HDUList.writeto = fail_midway
    try:
        yield
    finally:
        fits.HDUList.writeto = real


# --------------------------------------------------------------------------- the cases
# build(ctx) -> Invocation. Names are the case ids.


def info_truncated_in_primary_header(c):
    path = c.cut("cut_uncal.fits", lambda hdus: 1000)
    return Invocation("webbcal", ["info", str(path)], str(path), "malformed|truncat")


def info_empty_file(c):
    path = c.tmp / "empty_uncal.fits"
    path.write_bytes(b"")
    return Invocation("webbcal", ["info", str(path)], str(path), "not a FITS file")


def info_text_file(c):
    path = c.tmp / "notes_uncal.fits"
    path.write_text("SIMPLE but not FITS\n" * 300)
    return Invocation("webbcal", ["info", str(path)], str(path), "not a FITS file")


def info_missing_file(c):
    path = c.tmp / "absent_uncal.fits"
    return Invocation("webbcal", ["info", str(path)], str(path), "no such file")


def detector1_truncated_in_sci_data(c):
    path = c.cut("cut_uncal.fits", lambda hdus: hdus[1][1] + hdus[1][2] // 2)
    return Invocation("webbcal", c.detector1(path), str(path), "truncat", c.rate_outputs())


def detector1_truncated_in_sci_header(c):
    path = c.cut("cut_uncal.fits", lambda hdus: hdus[1][0] + 400)
    return Invocation("webbcal", c.detector1(path), str(path), "truncat|malformed", c.rate_outputs())


def detector1_truncated_one_byte_short(c):
    path = c.cut("cut_uncal.fits", lambda hdus: hdus[-1][1] + hdus[-1][2] - 1)
    return Invocation("webbcal", c.detector1(path), str(path), "truncat|malformed|unreadable", c.rate_outputs())


def detector1_primary_only(c):
    path = c.cut("primary_uncal.fits", lambda hdus: hdus[1][0])
    return Invocation("webbcal", c.detector1(path), str(path), "lacks the required SCI extension", c.rate_outputs())


def detector1_sci_float32(c):
    path = c.edited(c.uncal, "float_uncal.fits", _replace_hdu("SCI", lambda d: d.astype(np.float32)))
    return Invocation("webbcal", c.detector1(path), str(path), "dtype float32.*uint16", c.rate_outputs())


def detector1_sci_3d(c):
    path = c.edited(c.uncal, "cube_uncal.fits", _replace_hdu("SCI", lambda d: d[0]))
    return Invocation("webbcal", c.detector1(path), str(path), "SCI is 3-D", c.rate_outputs())


def detector1_ngroups_disagrees(c):
    path = c.edited(c.uncal, "ngroups_uncal.fits", _set("NGROUPS", 7))
    return Invocation("webbcal", c.detector1(path), str(path), "disagrees with NGROUPS=7", c.rate_outputs())


def detector1_ngroups_is_text(c):
    path = c.edited(c.uncal, "text_uncal.fits", _set("NGROUPS", "four"))
    return Invocation("webbcal", c.detector1(path), str(path), "NGROUPS='four' is not an integer", c.rate_outputs())


def detector1_substrt_is_float(c):
    path = c.edited(c.uncal, "substrt_uncal.fits", _set("SUBSTRT1", 1.5))
    return Invocation("webbcal", c.detector1(path), str(path), "SUBSTRT1=1.5 is not an integer", c.rate_outputs())


def detector1_tgroup_missing(c):
    path = c.edited(c.uncal, "notgroup_uncal.fits", lambda h: h[0].header.remove("TGROUP"))
    return Invocation("webbcal", c.detector1(path), str(path), "TGROUP .* is missing", c.rate_outputs())


def detector1_detector_missing(c):
    path = c.edited(c.uncal, "nodet_uncal.fits", lambda h: h[0].header.remove("DETECTOR"))
    return Invocation("webbcal", c.detector1(path), str(path), "DETECTOR", c.rate_outputs())


def detector1_readpatt_missing(c):
    path = c.edited(c.uncal, "noreadpatt_uncal.fits", lambda h: h[0].header.remove("READPATT"))
    return Invocation("webbcal", c.detector1(path), str(path), "READPATT", c.rate_outputs())


def detector1_unparsable_card(c):
    path = c.copy(c.uncal, "card_uncal.fits")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"FILTER  =")
    raw[at:at + 80] = b"FILTER  = 'F150W".ljust(80)
    path.write_bytes(bytes(raw))
    return Invocation("webbcal", c.detector1(path), str(path), r"malformed .*FILTER", c.rate_outputs())


def detector1_manifest_names_missing_file(c):
    refs = c.refs_copy()
    (refs / c.ref("gain").name).unlink()
    return Invocation("webbcal", c.detector1(c.uncal, refs=refs), "manifest.json",
                      rf"names {c.ref('gain').name}.*missing", c.rate_outputs())


def detector1_manifest_not_json(c):
    refs = c.refs_copy()
    (refs / "manifest.json").write_text('{"entries": [ {"file": ')
    return Invocation("webbcal", c.detector1(c.uncal, refs=refs), str(refs / "manifest.json"),
                      "not valid JSON", c.rate_outputs())


def detector1_empty_reference_directory(c):
    refs = c.tmp / "empty_refs"
    refs.mkdir()
    return Invocation("webbcal", c.detector1(c.uncal, refs=refs), str(refs),
                      "no mask reference in the cache", c.rate_outputs())


def detector1_ref_wrong_detector(c):
    ref = c.edited(c.ref("gain"), "nrcb1_gain.fits", _set("DETECTOR", "NRCB1"))
    return Invocation("webbcal", c.detector1(c.uncal, "--override-gain", str(ref)), str(ref),
                      "DETECTOR NRCB1, the exposure is NRCA1", c.rate_outputs())


def detector1_ref_wrong_subarray(c):
    def cut(hdul):
        for name in ("SCI", "DQ"):
            hdul[name].data = hdul[name].data[:32, :32].copy()
        hdul[0].header["SUBARRAY"] = "SUB160"
    ref = c.edited(c.ref("saturation"), "sub_saturation.fits", cut)
    return Invocation("webbcal", c.detector1(c.uncal, "--override-saturation", str(ref)), str(ref),
                      "does not contain the exposure", c.rate_outputs())


def detector1_ref_wrong_readout(c):
    """A dark of one frame cannot serve 4 BRIGHT2 groups (8 frames)."""
    [dark] = c.refs.glob("*_dark.fits")
    ref = c.edited(dark, "short_dark.fits", _replace_hdu("SCI", lambda d: d[:1].copy()))
    return Invocation("webbcal", c.detector1(c.uncal, "--override-dark", str(ref)), str(ref),
                      "frame", c.rate_outputs())


def detector1_ref_wrong_type(c):
    mask = c.ref("mask")
    return Invocation("webbcal", c.detector1(c.uncal, "--override-gain", str(mask)), str(mask),
                      "is a mask, not a gain reference", c.rate_outputs())


def detector1_ref_all_nan(c):
    ref = c.edited(c.ref("gain"), "nan_gain.fits", _fill("SCI", np.nan))
    return Invocation("webbcal", c.detector1(c.uncal, "--override-gain", str(ref)), str(ref),
                      "SCI has no finite value", c.rate_outputs())


def detector1_ref_with_inf(c):
    ref = c.edited(c.ref("readnoise"), "inf_readnoise.fits", _fill("SCI", np.inf, (5, 7)))
    return Invocation("webbcal", c.detector1(c.uncal, "--override-readnoise", str(ref)), str(ref),
                      "SCI has 1 infinite values", c.rate_outputs())


def detector1_ref_truncated(c):
    source = c.ref("superbias").read_bytes()
    ref = c.tmp / "cut_superbias.fits"
    ref.write_bytes(source[: len(source) // 2])
    return Invocation("webbcal", c.detector1(c.uncal, "--override-superbias", str(ref)), str(ref),
                      "truncat|malformed", c.rate_outputs())


def detector1_config_unknown_key(c):
    config = c.tmp / "steps.yaml"
    config.write_text(yaml.safe_dump({"detector1": {"steps": {"jump": {"rejection_thresh": 5}}}}))
    return Invocation("webbcal", c.detector1(c.uncal, "--config", str(config)), str(config),
                      "no parameter 'rejection_thresh'", c.rate_outputs())


def detector1_config_wrong_type(c):
    config = c.tmp / "steps.yaml"
    config.write_text(yaml.safe_dump({"detector1": {"steps": {"jump": {"rejection_threshold": "high"}}}}))
    return Invocation("webbcal", c.detector1(c.uncal, "--config", str(config)), str(config),
                      "rejection_threshold expects float, got 'high'", c.rate_outputs())


def detector1_config_not_yaml(c):
    config = c.tmp / "steps.yaml"
    config.write_text("detector1: [unclosed\n")
    return Invocation("webbcal", c.detector1(c.uncal, "--config", str(config)), str(config),
                      "cannot read configuration", c.rate_outputs())


def detector1_set_unknown_parameter(c):
    return Invocation("webbcal", c.detector1(c.uncal, "--set", "jump.rejection_thresh=5"), "jump",
                      "no parameter 'rejection_thresh'", c.rate_outputs())


def detector1_output_directory_is_a_file(c):
    blocker = c.tmp / "out"
    blocker.write_text("a file where the output directory should be")
    return Invocation("webbcal", c.detector1(c.uncal), str(blocker), "Not a directory|File exists|not a directory")


def detector1_full_disk_tmpfs(c):
    if c.full_disk is None:
        pytest.skip("cannot mount a tmpfs here (not root)")
    rate = c.full_disk / f"{c.tmp.name}_rate.fits"
    argv = ["detector1", str(c.uncal), "--refs", str(c.refs), "-o", str(rate)]
    return Invocation("webbcal", argv, str(rate.with_suffix("")),  # names rate or rateints
                      "No space left on device|Not enough space",
                      [rate, c.full_disk / f"{c.tmp.name}_rateints.fits"])


def detector1_full_disk_injected(c):
    return Invocation("webbcal", c.detector1(c.uncal), str(c.out("x_rate")), "No space left on device",
                      c.rate_outputs(), patch=_disk_full_during_fits_writes)


def step_saturation_on_a_rate(c):
    rate = c.products / "x_rate.fits"
    out = c.out("x_saturation.fits")
    return Invocation("webbcal", ["step", "saturation", str(rate), "-o", str(out), "--refs", str(c.refs)],
                      str(rate), "is a ImageModel, expected", [out])


def step_ramp_fit_inf_in_science(c):
    ramp = c.edited(c.products / "x_ramp.fits", "inf_ramp.fits", _fill("SCI", np.inf, (0, 2, 5, 5)))
    out = c.out("x_rate.fits")
    return Invocation("webbcal", ["step", "ramp_fit", str(ramp), "-o", str(out), "--refs", str(c.refs)],
                      str(ramp), "infinite|inf", [out, c.out("x_rateints.fits")])


def step_jump_nan_science(c):
    ramp = c.edited(c.products / "x_ramp.fits", "nan_ramp.fits", _fill("SCI", np.nan))
    out = c.out("x_jump.fits")
    return Invocation("webbcal", ["step", "jump", str(ramp), "-o", str(out), "--refs", str(c.refs)],
                      str(ramp), "NaN|finite", [out])


def refs_select_truncated_exposure(c):
    path = c.cut("cut_uncal.fits", lambda hdus: 1000)
    return Invocation("webbcal", ["refs", "select", str(path), "--cache", str(c.refs)], str(path),
                      "not a readable FITS file")


def refs_add_not_a_reference(c):
    cache = c.tmp / "cache"
    return Invocation("webbcal", ["refs", "add", str(c.uncal), "--cache", str(cache)], str(c.uncal),
                      "not a reference file", [cache / c.uncal.name])


def refs_verify_checksum_mismatch(c):
    refs = c.refs_copy()
    with open(refs / c.ref("gain").name, "ab") as handle:
        handle.write(b"\0" * 2880)
    return Invocation("webbcal", ["refs", "verify", "--cache", str(refs)], str(refs / "manifest.json"),
                      "problem")


def refs_add_to_full_disk(c):
    if c.full_disk is None:
        pytest.skip("cannot mount a tmpfs here (not root)")
    [dark] = c.refs.glob("*_dark.fits")  # larger than the whole tmpfs
    cache = c.full_disk / f"cache_{c.tmp.name}"
    return Invocation("webbcal", ["refs", "add", str(dark), "--cache", str(cache)], str(cache),
                      "No space left on device|Not enough space", [cache / dark.name])


def simulate_zero_dithers(c):
    out = c.tmp / "program"
    return Invocation("webbcal", ["simulate", str(out), "--ndither", "0"], "ndither",
                      "need at least one exposure", [out])


def simulate_filter_of_other_channel(c):
    out = c.tmp / "program"
    return Invocation("webbcal", ["simulate", str(out), "--filter", "F444W", "--detector", "NRCA1"], "filter",
                      "not a filter of the SHORT-wave detector", [out])


def simulate_to_full_disk(c):
    out = c.tmp / "program"
    return Invocation("webbcal", ["simulate", str(out), "--subarray", "sub64p", "--ngroups", "2", "--ndither", "1",
                                  "--nsources", "2"],
                      str(out), "No space left on device|Not enough space",
                      [out / "uncal" / "jw09999001001_02101_00001_nrca1_uncal.fits"], patch=_disk_full_during_fits_writes)


def config_write_to_full_disk(c):
    if c.full_disk is None:
        pytest.skip("cannot mount a tmpfs here (not root)")
    filler = c.full_disk / "filler"
    with contextlib.suppress(OSError):  # take whatever room is left
        with open(filler, "wb") as handle:
            handle.write(b"\0" * 60_000)
    target = c.full_disk / f"config_{c.tmp.name}"
    return Invocation("webbcal", ["config", "--write", str(target)], str(target / "config.yaml"),
                      "No space left on device|Not enough space", [target / "config.yaml"])


def script_detector1_missing_uncal(c):
    uncal = c.tmp / "absent_uncal.fits"
    rate, rateints = c.rate_outputs()
    return Invocation("detector1.py", [str(uncal), "--rate", str(rate), "--rateints", str(rateints),
                                       "--refs", str(c.refs)], str(uncal), "no such file", [rate, rateints])


def script_detector1_unknown_step(c):
    rate, rateints = c.rate_outputs()
    return Invocation("detector1.py", [str(c.uncal), "--rate", str(rate), "--rateints", str(rateints),
                                       "--refs", str(c.refs), "--params", json.dumps({"jumpp": {}})],
                      "jumpp", "unknown detector1 step 'jumpp'", [rate, rateints])


def script_simulate_unknown_preset(c):
    out = c.tmp / "program"
    return Invocation("simulate.py", [str(out), "--settings", json.dumps({"preset": "huge"})], "preset",
                      "unknown preset 'huge'", [out])


EXPOSURE = "jw09999001001_02101_00001_nrca1"


def _association(c, edit: Callable[[dict], None], name: str = "bad_asn.json") -> Invocation:
    """An image2 association of the tiny exposure's rate, edited; image2 runs on it."""
    folder = c.tmp / "asn"
    folder.mkdir(exist_ok=True)
    shutil.copy(c.products / "x_rate.fits", folder / f"{EXPOSURE}_rate.fits")
    [source] = (c.program / "asn").glob("*image2*_asn.json")
    document = json.loads(source.read_text())
    edit(document)
    path = folder / name
    path.write_text(json.dumps(document))
    products = [p.get("name", "") for p in document.get("products", [])] or [EXPOSURE]
    outputs = [folder / f"{p}_{suffix}.fits" for p in products for suffix in ("cal", "i2d")]
    return Invocation("webbcal", ["image2", str(path), "--refs", str(c.refs)], str(path), "", outputs)


def _with(invocation: Invocation, problem: str) -> Invocation:
    invocation.problem = problem
    return invocation


def asn_not_json(c):
    invocation = _association(c, lambda doc: None)
    invocation.outputs[0].parent.joinpath("bad_asn.json").write_text('{"asn_type": ')
    return _with(invocation, "not valid JSON")


def asn_without_products(c):
    return _with(_association(c, lambda doc: doc.pop("products")), "missing required key 'products'")


def asn_member_file_missing(c):
    def edit(doc):
        doc["products"][0]["members"][0]["expname"] = "jw09999001001_02101_00009_nrca1_rate.fits"
    return _with(_association(c, edit), "member 'jw09999001001_02101_00009_nrca1_rate.fits' of product .* not found")


def asn_duplicate_member(c):
    def edit(doc):
        members = doc["products"][0]["members"]
        members.append(dict(members[0]))
    return _with(_association(c, edit), "2 science members|duplicate|appears 2 times")


def asn_mixes_instruments(c):
    other = f"{EXPOSURE[:-6]}_mirimage"
    miri = c.tmp / "asn"
    miri.mkdir(exist_ok=True)
    with fits.open(c.products / "x_rate.fits") as hdul:
        hdul[0].header["INSTRUME"] = "MIRI"
        hdul.writeto(miri / f"{other}_rate.fits")

    def edit(doc):
        product = json.loads(json.dumps(doc["products"][0]))
        product["name"] = other
        product["members"][0]["expname"] = f"{other}_rate.fits"
        doc["products"].append(product)
    return _with(_association(c, edit), "MIRI.*NIRCAM|NIRCAM.*MIRI|instrument")


def _workflow(c, config: dict, **kwargs) -> Invocation:
    path = c.tmp / "my.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(c.tmp / "results"), **config}))
    return Invocation("snakemake", snakemake_command(c.tmp, "--configfile", str(path), "--cores", "1"),
                      kwargs.pop("names", str(path)), **kwargs)


def snakemake_unknown_key(c):
    return _workflow(c, {"outptu_dir": "x"}, problem="outptu_dir: unknown key")


def snakemake_wrong_type(c):
    return _workflow(c, {"simulate": {"seed": "abc"}}, problem="simulate.seed: expected integer, got 'abc'")


def snakemake_empty_input_directory(c):
    (c.tmp / "uncal").mkdir()
    return _workflow(c, {"input_dir": str(c.tmp / "uncal")}, names=str(c.tmp / "uncal"),
                     problem=r"no exposures \(\*_uncal.fits\)")


def snakemake_truncated_exposure(c):
    """A job fails: Snakemake reports it its own way; the rule's log holds the one line."""
    (c.tmp / "uncal").mkdir()
    path = c.cut("uncal/jw09999001001_02101_00001_nrca1_uncal.fits", lambda hdus: hdus[1][1] + 100)
    stem = path.name.removesuffix("_uncal.fits")
    results = c.tmp / "results"
    return _workflow(c, {"input_dir": str(c.tmp / "uncal"), "refs_dir": str(c.refs)}, names=str(path),
                     problem="truncat", outputs=[results / f"{stem}_rate.fits", results / f"{stem}_rateints.fits"],
                     log=results / "logs" / "detector1" / f"{stem}.log")


GAPS = {
    # case: why it fails today, and where the fix belongs (not in this suite's files)
}

BUILDERS = [
    info_truncated_in_primary_header, info_empty_file, info_text_file, info_missing_file,
    detector1_truncated_in_sci_data, detector1_truncated_in_sci_header, detector1_truncated_one_byte_short,
    detector1_primary_only, detector1_sci_float32, detector1_sci_3d, detector1_ngroups_disagrees,
    detector1_ngroups_is_text, detector1_substrt_is_float, detector1_tgroup_missing, detector1_detector_missing,
    detector1_readpatt_missing, detector1_unparsable_card, detector1_manifest_names_missing_file,
    detector1_manifest_not_json, detector1_empty_reference_directory, detector1_ref_wrong_detector,
    detector1_ref_wrong_subarray, detector1_ref_wrong_readout, detector1_ref_wrong_type, detector1_ref_all_nan,
    detector1_ref_with_inf, detector1_ref_truncated, detector1_config_unknown_key, detector1_config_wrong_type,
    detector1_config_not_yaml, detector1_set_unknown_parameter, detector1_output_directory_is_a_file,
    detector1_full_disk_tmpfs, detector1_full_disk_injected,
    step_saturation_on_a_rate, step_ramp_fit_inf_in_science, step_jump_nan_science,
    refs_select_truncated_exposure, refs_add_not_a_reference, refs_verify_checksum_mismatch, refs_add_to_full_disk,
    simulate_zero_dithers, simulate_filter_of_other_channel, simulate_to_full_disk, config_write_to_full_disk,
    asn_not_json, asn_without_products, asn_member_file_missing, asn_duplicate_member, asn_mixes_instruments,
    script_detector1_missing_uncal, script_detector1_unknown_step, script_simulate_unknown_preset,
    snakemake_unknown_key, snakemake_wrong_type, snakemake_empty_input_directory, snakemake_truncated_exposure,
]
CASES = {build.__name__: build for build in BUILDERS}


def _param(name):
    marks = [pytest.mark.xfail(strict=True, reason=GAPS[name])] if name in GAPS else []
    return pytest.param(name, id=name, marks=marks)


# --------------------------------------------------------------------------- running


def _entry_main(entry: str):
    if entry == "webbcal":
        from webbcal.cli import main

        return main
    module = load_script(entry.removesuffix(".py"))
    return module.run


def _command(invocation: Invocation) -> list[str]:
    if invocation.entry == "snakemake":
        return invocation.argv
    if invocation.entry == "webbcal":
        return [sys.executable, "-m", "webbcal.cli", *invocation.argv]
    return [sys.executable, str(Path(__file__).resolve().parents[2] / "scripts" / invocation.entry),
            *invocation.argv]


def _run(invocation: Invocation, cwd: Path, real_process: bool) -> Outcome:
    if invocation.entry == "snakemake" or real_process:
        return run_process(_command(invocation), cwd)
    with invocation.patch() if invocation.patch else contextlib.nullcontext():
        return run_in_process(_entry_main(invocation.entry), invocation.argv)


def _check(invocation: Invocation, outcome: Outcome, workdir: Path) -> None:
    assert outcome.code != 0, f"exit code 0 for bad input; stderr: {outcome.stderr[-500:]}"
    assert "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    text = outcome.stderr
    if invocation.log is not None:  # a failed Snakemake job: the rule's log has the one line
        assert invocation.log.exists(), outcome.stderr[-2000:]
        text = invocation.log.read_text()
        assert "Traceback" not in text, text[-2000:]
    lines = Outcome(1, text).error_lines(ignore=SNAKEMAKE_CHATTER)
    assert len(lines) == 1, "expected exactly one error line, got:\n" + "\n".join(lines[-20:])
    [line] = lines
    assert line.startswith("webbcal: error: "), line
    assert invocation.names in line, f"{invocation.names!r} not named in: {line}"
    assert re.search(invocation.problem, line), f"{invocation.problem!r} not in: {line}"
    for output in invocation.outputs:
        assert not output.exists(), f"{output} exists after a failure"
    for root in {workdir, *(o.parent for o in invocation.outputs)}:
        if root.exists():
            assert temporaries(root) == [], temporaries(root)


@pytest.fixture
def context(tmp_path, tiny_program, tiny_products, full_disk):
    program, uncal = tiny_program
    return Context(tmp_path, program, uncal, tiny_products, full_disk)


@pytest.mark.parametrize("name", [_param(name) for name in CASES])
def test_bad_input_case(name, context):
    invocation = CASES[name](context)
    outcome = _run(invocation, context.tmp, real_process=False)
    _check(invocation, outcome, context.tmp)


# One case per entry point, as a real process: what a user sees in a terminal.
REAL_PROCESS_CASES = ["detector1_truncated_in_sci_data", "info_text_file", "refs_select_truncated_exposure",
                      "detector1_ref_with_inf", "simulate_zero_dithers", "script_detector1_missing_uncal",
                      "script_simulate_unknown_preset", "asn_not_json"]


@pytest.mark.parametrize("name", REAL_PROCESS_CASES)
def test_real_process(name, context):
    invocation = CASES[name](context)
    outcome = _run(invocation, context.tmp, real_process=True)
    _check(invocation, outcome, context.tmp)


def test_debug_shows_the_traceback(context):
    path = context.cut("cut_uncal.fits", lambda hdus: 1000)
    outcome = run_process([sys.executable, "-m", "webbcal.cli", "--debug", "info", str(path)], context.tmp)
    assert outcome.code != 0 and "Traceback" in outcome.stderr and "WebbcalError" in outcome.stderr


def test_the_suite_has_at_least_30_cases():
    assert len(CASES) >= 30, len(CASES)
    assert len(set(CASES)) == len(BUILDERS)
