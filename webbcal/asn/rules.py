"""The association rules webbcal uses, each a small pure function of one pool row.

A rule looks at one exposure (a pool row, lower-case strings) within one candidate and
answers: does it belong to this kind of association, in which *role* (science,
background, direct_image, ...), and under which *key* — exposures with equal keys may
share an association. The behaviour follows ``jwst/associations/lib/rules_level2b.py`` and
``rules_level3.py`` (jwst 3.0) for the rules named below; constraint by constraint, the
comments say which official constraint a test stands for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from webbcal.asn.pool import is_set

# ---- exposure classification (jwst/associations/lib/dms_base.py) ----
ACQ_EXP_TYPES = frozenset({
    "mir_tacq", "mir_taconfirm", "nis_taconfirm", "nis_tacq", "nrc_taconfirm", "nrc_tacq", "nrs_confirm",
    "nrs_msata", "nrs_taconfirm", "nrs_tacq", "nrs_taslit", "nrs_verify", "nrs_wata"})
EXPTYPE_MAP = {
    "mir_darkall": "dark", "mir_darkimg": "dark", "mir_darkmrs": "dark", "mir_flatimage": "flat",
    "mir_flatmrs": "flat", "mir_flatimage-ext": "flat", "mir_flatmrs-ext": "flat",
    "mir_tacq": "target_acquisition", "mir_taconfirm": "target_acquisition", "nis_dark": "dark",
    "nis_focus": "engineering", "nis_lamp": "engineering", "nis_tacq": "target_acquisition",
    "nis_taconfirm": "target_acquisition", "nrc_dark": "dark", "nrc_flat": "flat",
    "nrc_focus": "engineering", "nrc_led": "engineering", "nrc_tacq": "target_acquisition",
    "nrc_taconfirm": "target_acquisition", "nrs_autoflat": "autoflat", "nrs_autowave": "autowave",
    "nrs_confirm": "target_acquisition", "nrs_dark": "dark", "nrs_focus": "engineering",
    "nrs_image": "engineering", "nrs_lamp": "engineering", "nrs_msata": "target_acquisition",
    "nrs_tacq": "target_acquisition", "nrs_taconfirm": "target_acquisition",
    "nrs_taslit": "target_acquisition", "nrs_wata": "target_acquisition"}
IMAGE2_SCIENCE_EXP_TYPES = frozenset({
    "fgs_image", "mir_4qpm", "mir_image", "mir_lyot", "nis_ami", "nis_image", "nrc_coron", "nrc_image",
    "nrs_mimf", "nrc_tsimage"})
IMAGE2_NONSCIENCE_EXP_TYPES = frozenset({"mir_coroncal", "nis_focus", "nrc_focus", "nrs_focus", "nrs_image"}) | ACQ_EXP_TYPES
SPEC2_SCIENCE_EXP_TYPES = frozenset({
    "mir_lrs-fixedslit", "mir_lrs-slitless", "mir_mrs", "mir_wfss", "nis_soss", "nis_wfss", "nrc_tsgrism",
    "nrc_wfss", "nrs_fixedslit", "nrs_ifu", "nrs_msaspec", "nrs_brightobj"})
LEVEL2B_EXP_TYPES = IMAGE2_SCIENCE_EXP_TYPES | IMAGE2_NONSCIENCE_EXP_TYPES | SPEC2_SCIENCE_EXP_TYPES
TSO_EXP_TYPES = frozenset({"nrc_tsimage", "nrc_tsgrism", "nrs_brightobj"})
CORON_EXP_TYPES = frozenset({"mir_4qpm", "mir_lyot", "nrc_coron"})
IMAGE3_EXP_TYPES = frozenset({"nrc_image", "mir_image", "nis_image", "fgs_image", "nrs_mimf"})
DIRECT_IMAGE_EXP_TYPES = frozenset({"nis_image", "nrc_image", "mir_image"})


@dataclass(frozen=True)
class Candidate:
    """An association candidate: ``o001`` observation, ``c1000`` mosaic/background/..."""

    id: str
    type: str

    @property
    def is_direct_image(self) -> bool:
        # Constraint_Target "acdirect": such candidates use target 000
        return self.type == "direct_image" and re.fullmatch(r"c\d{4}", self.id) is not None

    def as_pool_value(self) -> str:
        return str([(self.id, self.type)])


# Grouping keys are tuples of pool values. UNSET (an optional column left empty) matches any
# value, as an official optional constraint does: an empty value passes it, and the first
# exposure that has a value sets it for the association (``merge_keys``).
UNSET = None
NOT_USED = ""  # a naming position the rule has no constraint for


def keys_match(draft_key: tuple, row_key: tuple) -> bool:
    return len(draft_key) == len(row_key) and all(
        a == b or a is UNSET or b is UNSET for a, b in zip(draft_key, row_key))


def merge_keys(draft_key: tuple, row_key: tuple) -> tuple:
    return tuple(b if a is UNSET else a for a, b in zip(draft_key, row_key))


@dataclass(frozen=True)
class Match:
    """A row's place in an association: its member role and the grouping key."""

    role: str
    key: tuple


def get(row: dict, *keys: str) -> str | None:
    """First set value among ``keys`` (pool "not set" values count as missing)."""
    for key in keys:
        value = row.get(key)
        if is_set(value):
            return value
    return None


def exposure_type(row: dict) -> str:
    """The member exptype of a row (``dms_base.get_exposure_type``)."""
    pointing = get(row, "pntgtype")
    if pointing is not None and pointing != "science":
        return pointing
    result = EXPTYPE_MAP.get(row.get("exp_type", ""), "science")
    if result != "science":
        return result
    for special, column in (("psf", "is_psf"), ("imprint", "is_imprt"), ("background", "bkgdtarg")):
        if get(row, column) is not None:
            return special
    return "science"


def level2_exposure_type(row: dict) -> str:
    """Level-2 rules treat PSF exposures as science (``DMSLevel2bBase.get_exposure_type``)."""
    role = exposure_type(row)
    return "science" if role == "psf" else role


def is_tso(row: dict) -> bool:
    """Constraint_TSO (header-built pools spell TSOVISIT=T as "true": accepted too)."""
    return get(row, "pntgtype") == "science" and (
        row.get("tsovisit") in ("t", "true") or row.get("exp_type") in TSO_EXP_TYPES)


def is_wfsc_visit(row: dict) -> bool:
    return re.fullmatch(r".+wfsc.+", row.get("visitype", "")) is not None


def uses_integrations(row: dict) -> bool:
    """Products kept per integration (rateints/calints): coronagraphy, AMI, TSO."""
    return row.get("exp_type") in CORON_EXP_TYPES or row.get("exp_type") == "nis_ami" or is_tso(row)


def target_of(row: dict, candidate: Candidate) -> str | None:
    """Constraint_Target: 000 for direct-image candidates, else the row's TARGETID.
    (Discovered associations see the row's full candidate list, which never matches.)"""
    return "000" if candidate.is_direct_image else get(row, "targetid")


def _mode_ok(row: dict) -> bool:
    """Constraint_Mode's tests that are not plain grouping keys."""
    return (get(row, "instrume") is not None and get(row, "detector") is not None
            and get(row, "filter", "band") is not None
            and row.get("detector") != "nirspec" and row.get("filter") != "opaque"
            and not (row.get("detector") == "nrcblong" and row.get("exp_type") == "nrc_tsgrism")
            and not is_wfsc_visit(row))


def _mode_key(row: dict) -> tuple:
    return (get(row, "program"), get(row, "tsovisit"), get(row, "instrume"), get(row, "detector"),
            get(row, "filter", "band"), get(row, "pupil", "grating"), get(row, "fxd_slit"),
            get(row, "subarray"), get(row, "channel"), row.get("exp_type"))


# ---------------- Level 2 ----------------
# ``single``: every matching row is its own association (the rule allows nothing but one
# science exposure). Otherwise one science exposure per association plus every
# auxiliary row (role other than science) of the same key.

def lv2_image(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv2Image: a science image plus the backgrounds (BKGDTARG) of its optical mode."""
    if get(row, "program") is None or not _mode_ok(row) or is_tso(row):
        return None
    if row.get("exp_type") not in IMAGE2_SCIENCE_EXP_TYPES:
        return None
    role = level2_exposure_type(row)
    if role != "science" and get(row, "bkgdtarg") is None:
        return None
    return Match(role, _mode_key(row))


def lv2_image_special(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv2ImageSpecial: a background or PSF exposure calibrated on its own."""
    if get(row, "program") is None or not _mode_ok(row):
        return None
    if row.get("exp_type") not in IMAGE2_SCIENCE_EXP_TYPES or get(row, "bkgdtarg", "is_psf") is None:
        return None
    return Match("science", _mode_key(row))


def lv2_image_nonscience(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv2ImageNonScience: target acquisitions and other non-science images."""
    if get(row, "program") is None:
        return None
    exp_type = row.get("exp_type")
    msa_park = (exp_type == "nrs_msaspec" and row.get("msastate") == "primarypark_allopen"
                and row.get("grating") == "mirror")
    if exposure_type(row) == "target_acquisition" or exp_type in IMAGE2_NONSCIENCE_EXP_TYPES or msa_park:
        return Match("science", (get(row, "program"), get(row, "tsovisit")))
    return None


def lv2_spec_special(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv2SpecSpecial: a background or PSF spectral exposure calibrated on its own."""
    if get(row, "program") is None or not _mode_ok(row):
        return None
    if row.get("exp_type") not in SPEC2_SCIENCE_EXP_TYPES or get(row, "bkgdtarg", "is_psf") is None:
        return None
    return Match("science", _mode_key(row))


def lv2_wfsc(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv2WFSC: wavefront-sensing images, except NIRCam line-of-sight jitter ones."""
    if get(row, "program") is None or row.get("exp_type") not in IMAGE2_SCIENCE_EXP_TYPES:
        return None
    if level2_exposure_type(row) != "science" or not is_wfsc_visit(row):
        return None
    if re.fullmatch("wfsc_los_jitter", row.get("dms_note", ""), re.IGNORECASE) and row.get("exp_type") == "nrc_image":
        return None
    return Match("science", (get(row, "program"), get(row, "tsovisit")))


def lv2_wfss_nircam(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv2WFSSNRC: one grism exposure + the direct images of its detector (removed at
    finalisation in favour of the direct image's Level-3 products)."""
    target = target_of(row, candidate)
    if get(row, "program") is None or target is None:
        return None
    if row.get("exp_type") not in ("nrc_wfss", "nrc_image"):
        return None
    if get(row, "instrume") is None or get(row, "detector") is None:
        return None
    role = level2_exposure_type(row)
    if role == "science" and row.get("exp_type") in DIRECT_IMAGE_EXP_TYPES:
        role = "direct_image"
    return Match(role, (get(row, "program"), get(row, "tsovisit"), target, get(row, "instrume"), get(row, "detector")))


@dataclass(frozen=True)
class Rule:
    name: str
    asn_type: str
    level: int
    match: Callable[[dict, Candidate], Match | None]
    single: bool = False


LEVEL2_RULES = (
    Rule("Asn_Lv2Image", "image2", 2, lv2_image),
    Rule("Asn_Lv2ImageNonScience", "image2", 2, lv2_image_nonscience, single=True),
    Rule("Asn_Lv2ImageSpecial", "image2", 2, lv2_image_special, single=True),
    Rule("Asn_Lv2SpecSpecial", "spec2", 2, lv2_spec_special, single=True),
    Rule("Asn_Lv2WFSC", "image2", 2, lv2_wfsc, single=True),
    Rule("Asn_Lv2WFSSNRC", "spec2", 2, lv2_wfss_nircam),
)


# ---------------- Level 3 ----------------
# Keys are (program, instrument, target, optical element, optical element 2, slit, subarray,
# other grouping values); ``level3_name_parts`` reads the naming parts back.

def _lv3_image_key(row: dict, candidate: Candidate, target: str | None = None) -> tuple | None:
    """Constraints shared by the Level-3 imaging rules (optical path, target, image type, no WFS&C)."""
    target = target_of(row, candidate) if target is None else target
    if get(row, "program") is None or get(row, "instrume") is None or get(row, "is_imprt") is not None:
        return None
    if target is None or get(row, "subarray") is None or row.get("exp_type") not in IMAGE3_EXP_TYPES:
        return None
    if "wfsc" in row.get("visitype", "") or is_tso(row):
        return None
    return (get(row, "program"), get(row, "instrume"), target, get(row, "filter"), get(row, "pupil", "grating"),
            get(row, "fxd_slit"), get(row, "subarray"), row.get("exp_type"), get(row, "visitype"))


def lv3_image(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv3Image: all exposures of one optical path and target in the candidate, any detector."""
    key = _lv3_image_key(row, candidate)
    if key is None or get(row, "bkgdtarg") is not None:
        return None
    return Match(exposure_type(row), key)


def lv3_image_background(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv3ImageBackground: the background-target images of one optical path, as science.
    (Officially its product name equals the science mosaic's; the generator keeps both.)"""
    key = _lv3_image_key(row, candidate)
    if key is None or get(row, "bkgdtarg") is None:
        return None
    role = "target_acquisition" if exposure_type(row) == "target_acquisition" else "science"
    return Match(role, key + (get(row, "bkgdtarg"),))


def lv3_image_mosaic(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv3ImageMosaic: like Asn_Lv3Image without a target constraint (target "t000"),
    valid only for mosaic candidates."""
    if candidate.type != "mosaic":
        return None
    key = _lv3_image_key(row, candidate, target=NOT_USED)
    if key is None or get(row, "bkgdtarg") is not None:
        return None
    return Match(exposure_type(row), key)


def lv3_wfss_nircam(row: dict, candidate: Candidate) -> Match | None:
    """Asn_Lv3WFSSNRC: all grism exposures of one grism+filter and target in the candidate."""
    target = target_of(row, candidate)
    if get(row, "program") is None or get(row, "instrume") is None or get(row, "is_imprt") is not None:
        return None
    if target is None or row.get("exp_type") != "nrc_wfss":
        return None
    pupil, filter_ = get(row, "pupil"), get(row, "filter")
    if pupil not in ("grismr", "grismc") or filter_ is None:
        return None
    role = exposure_type(row)
    if role == "background":
        target = UNSET  # the official target constraint skips background exposures
    return Match(role, (get(row, "program"), get(row, "instrume"), target, pupil, filter_, NOT_USED, NOT_USED))


LEVEL3_RULES = (
    Rule("Asn_Lv3Image", "image3", 3, lv3_image),
    Rule("Asn_Lv3ImageBackground", "image3", 3, lv3_image_background),
    Rule("Asn_Lv3ImageMosaic", "image3", 3, lv3_image_mosaic),
    Rule("Asn_Lv3WFSSNRC", "spec3", 3, lv3_wfss_nircam),
)


def level3_name_parts(key: tuple) -> dict:
    """The naming values of a Level-3 key: (program, instrument, target, optical element,
    optical element 2, slit, subarray, anything else)."""
    program, instrument, target, opt_a, opt_b, slit, subarray = key[:7]
    return {"program": program, "instrument": instrument, "target": target, "opt": (opt_a, opt_b),
            "slit": slit or None, "subarray": subarray or None}
