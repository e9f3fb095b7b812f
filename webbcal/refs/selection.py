"""CRDS-like best-reference selection for NIRCam.

Each reference type has a fixed list of selector keywords (the NIRCam CRDS rmaps, as
gathered in the specs: detector1.md §3.1, image2_image3_wfss.md §6). A cache entry
records, for each of those keywords, the value its file serves: one value, an OR-list
``A|B|C|`` (CRDS ``P_`` pattern keywords), or ``ANY``/``N/A``/missing for "any value".

Selection: keep entries whose every recorded selector equals the exposure's value; among
those prefer the most specific (fewest wildcards; a full-frame file serves any subarray
but an exact subarray file wins), then the latest USEAFTER not after the exposure's
DATE-OBS/TIME-OBS, then the greatest file name (CRDS serial numbers grow).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

from webbcal.errors import ReferenceNotFound

SELECTORS: dict[str, tuple[str, ...]] = {
    "mask": ("INSTRUME", "DETECTOR", "SUBARRAY"),
    "saturation": ("INSTRUME", "DETECTOR"),
    "superbias": ("INSTRUME", "DETECTOR", "READPATT", "SUBARRAY"),
    "linearity": ("INSTRUME", "DETECTOR", "SUBARRAY"),
    "dark": ("INSTRUME", "DETECTOR", "EXP_TYPE", "NOUTPUTS", "SUBARRAY"),
    "gain": ("INSTRUME", "DETECTOR", "SUBARRAY"),
    "readnoise": ("INSTRUME", "DETECTOR", "READPATT", "SUBARRAY"),
    "ipc": ("INSTRUME", "DETECTOR"),
    "flat": ("INSTRUME", "DETECTOR", "FILTER", "PUPIL"),
    "photom": ("INSTRUME", "DETECTOR", "EXP_TYPE"),
    "area": ("INSTRUME", "DETECTOR", "FILTER", "PUPIL", "EXP_TYPE"),
    "bkg": ("INSTRUME", "DETECTOR", "EXP_TYPE", "FILTER", "PUPIL"),
    "apcorr": ("INSTRUME", "EXP_TYPE"),
    "distortion": ("INSTRUME", "DETECTOR", "EXP_TYPE", "CHANNEL", "FILTER", "PUPIL"),
    "filteroffset": ("INSTRUME", "CHANNEL", "MODULE"),
    # FILTER too: traces depend on the filter, so a cache holds one specwcs per filter+grism
    # (an entry without FILTER still matches any filter)
    "specwcs": ("INSTRUME", "EXP_TYPE", "MODULE", "FILTER", "PUPIL"),
    "wavelengthrange": ("INSTRUME", "EXP_TYPE"),
    "abvegaoffset": ("INSTRUME", "EXP_TYPE"),
}

WILDCARDS = frozenset({"", "ANY", "N/A", "NONE"})
# References that are cut to the exposure's subarray serve any subarray from these.
FULL_FRAME_NAMES = frozenset({"FULL", "GENERIC"})
# Dark subtraction never slices: its SUBARRAY must match exactly.
UNSLICED = frozenset({"dark"})
EPOCH = _dt.datetime(1900, 1, 1)


def normalize(value) -> str:
    return str(value).strip().upper() if value is not None else ""


def allowed_values(value) -> frozenset[str] | None:
    """An entry's selector value as the set it serves; None = wildcard (anything)."""
    text = normalize(value)
    parts = {p.strip() for p in text.split("|") if p.strip()}
    if not parts or parts & WILDCARDS:
        return None
    return frozenset(parts)


_USEAFTER_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f",
                     "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%b %d %Y %H:%M:%S", "%b %d %Y")


def parse_time(text) -> _dt.datetime:
    """USEAFTER / DATE-OBS values in the forms CRDS accepts -> naive UTC datetime."""
    raw = str(text).strip()
    value = re.sub(r"(\.\d{6})\d+", r"\1", raw.rstrip("Z"))  # more than µs digits
    for fmt in _USEAFTER_FORMATS:
        try:
            return _dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise ValueError(f"unrecognised date/time {raw!r}")


def exposure_time(header) -> _dt.datetime:
    """DATE-OBS + TIME-OBS of an exposure (TIME-OBS optional: start of the day)."""
    date = header.get("DATE-OBS")
    if not date:
        raise ValueError("the exposure has no DATE-OBS")
    time = header.get("TIME-OBS") or "00:00:00"
    if "T" in str(date):
        return parse_time(date)
    return parse_time(f"{str(date).strip()}T{str(time).strip()}")


@dataclass(frozen=True)
class Entry:
    """One reference file in a cache manifest."""

    file: str
    reftype: str
    selectors: dict
    useafter: str
    sha256: str = ""

    def to_json(self) -> dict:
        return {"file": self.file, "reftype": self.reftype, "selectors": dict(self.selectors),
                "useafter": self.useafter, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict) -> "Entry":
        return cls(file=data["file"], reftype=data["reftype"].lower(),
                   selectors={k.upper(): v for k, v in (data.get("selectors") or {}).items()},
                   useafter=data["useafter"], sha256=data.get("sha256", ""))


def mismatches(entry: Entry, reftype: str, header) -> list[str]:
    """Selector keywords on which ``entry`` does not serve the exposure ('' if it does)."""
    failed = []
    for key in SELECTORS[reftype]:
        allowed = allowed_values(entry.selectors.get(key))
        if allowed is None:
            continue
        wanted = normalize(header.get(key))
        if wanted in allowed:
            continue
        if key == "SUBARRAY" and reftype not in UNSLICED and allowed & FULL_FRAME_NAMES:
            continue  # a full-frame file is cut to any subarray
        failed.append(key)
    return failed


def specificity(entry: Entry, reftype: str, header) -> int:
    """How many selectors the entry pins to the exposure's exact value."""
    score = 0
    for key in SELECTORS[reftype]:
        allowed = allowed_values(entry.selectors.get(key))
        if allowed is not None and normalize(header.get(key)) in allowed:
            score += 1
    return score


def choose(entries: list[Entry], reftype: str, header, where: str | None = None) -> Entry:
    """The best entry for the exposure, or ReferenceNotFound explaining why there is none."""
    reftype = reftype.lower()
    if reftype not in SELECTORS:
        raise ReferenceNotFound(where, f"unknown reference type {reftype!r}")
    try:
        when = exposure_time(header)
    except ValueError as exc:
        raise ReferenceNotFound(where, f"cannot select {reftype}: {exc}") from None
    of_type = [e for e in entries if e.reftype == reftype]
    matching = [e for e in of_type if not mismatches(e, reftype, header)]
    dated = [e for e in matching if _useafter(e) <= when]
    if dated:
        return max(dated, key=lambda e: (specificity(e, reftype, header), _useafter(e), e.file))
    raise ReferenceNotFound(where, _explain(reftype, header, when, of_type, matching))


def _useafter(entry: Entry) -> _dt.datetime:
    try:
        return parse_time(entry.useafter)
    except ValueError:
        return _dt.datetime.max  # unparseable: never selected


def _explain(reftype: str, header, when, of_type: list[Entry], matching: list[Entry]) -> str:
    wanted = ", ".join(f"{k}={normalize(header.get(k)) or '(missing)'}" for k in SELECTORS[reftype])
    if not of_type:
        return f"no {reftype} reference in the cache at all (exposure {wanted})"
    if matching:
        earliest = min(_useafter(e) for e in matching).isoformat()
        return (f"no {reftype} reference for {wanted} has USEAFTER on or before the exposure "
                f"date {when.isoformat()} (earliest matching USEAFTER {earliest})")
    failed = sorted({key for entry in of_type for key in mismatches(entry, reftype, header)},
                    key=SELECTORS[reftype].index)
    offers = "; ".join(
        f"{k}={normalize(header.get(k)) or '(missing)'} not offered (cache has "
        f"{', '.join(sorted({normalize(e.selectors.get(k)) or 'ANY' for e in of_type}))})"
        for k in failed)
    return f"no {reftype} reference matches {wanted}: {offers}"
