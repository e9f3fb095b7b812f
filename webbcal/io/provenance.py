"""Provenance of a product: software version, references (name + sha256), parameters, inputs.

Written in three places, each where its readers look:

* FITS keywords the official pipeline also writes: ``CAL_VER`` (webbcal version),
  ``CAL_VCS`` (git commit of the webbcal checkout, else ``RELEASE``), ``DATE`` and one
  ``R_*`` keyword per reference type holding the reference file name
  (``jwst/stpipe/core.py::finalize_result`` writes ``crds://<name>``; local references have
  no CRDS URI, so the bare file name is written);
* ``HISTORY`` cards (human readable, survive any FITS tool; stdatamodels maps them to
  ``meta.history`` without schema constraints);
* the ASDF tree under ``meta.webbcal.provenance``: a list with one record per stamp
  (stage), holding the exact parameters, reference paths and sha256, and input names.
  ``meta`` admits additional properties in ``core.schema``, so stdatamodels validation
  still passes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import textwrap
from pathlib import Path

import numpy as np
from astropy.io import fits

import webbcal

log = logging.getLogger("webbcal.io.provenance")

# reference type -> FITS keyword (core.schema ``meta.ref_file.<type>.name``)
REFERENCE_KEYWORDS = {
    "mask": "R_MASK",
    "saturation": "R_SATURA",
    "superbias": "R_SUPERB",
    "ipc": "R_IPC",
    "linearity": "R_LINEAR",
    "dark": "R_DARK",
    "gain": "R_GAIN",
    "readnoise": "R_READNO",
    "refpix": "R_REFPIX",
    "sirskernel": "R_SIRSKL",
    "persat": "R_PERSAT",
    "trapdensity": "R_TRPDEN",
    "trappars": "R_TRPPAR",
    "flat": "R_FLAT",
    "photom": "R_PHOTOM",
    "area": "R_AREA",
    "distortion": "R_DISTOR",
    "filteroffset": "R_FILOFF",
    "specwcs": "R_SPCWCS",
    "wavelengthrange": "R_WAVRAN",
    "bkg": "R_BKG",
    "apcorr": "R_APCORR",
    "abvegaoffset": "R_ABVEGA",
}

_HISTORY_WIDTH = 72
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, cached per (path, size, mtime) within the process."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(8 << 20), b""):
                digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def vcs_revision() -> str:
    """The git commit of the webbcal checkout (read from .git, no subprocess).

    ``RELEASE`` for an installed package outside a checkout (as the official pipeline
    writes), ``UNKNOWN`` for a checkout whose HEAD cannot be resolved (no commit yet).
    """
    git = Path(webbcal.__file__).resolve().parent.parent / ".git"
    try:
        if git.is_file():  # a worktree: ".git" holds "gitdir: <path>"
            git = Path(git.read_text().split(":", 1)[1].strip())
        if not git.is_dir():
            return "RELEASE"
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:12]
        ref = head.split(None, 1)[1]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:12]
        packed = git / "packed-refs"
        for line in packed.read_text().splitlines() if packed.exists() else []:
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except (OSError, IndexError):
        pass
    return "UNKNOWN"


def stamp_provenance(
    meta: fits.Header,
    tree: dict,
    *,
    step_params: dict,
    references: dict,
    inputs: list,
) -> dict:
    """Record how a product was made in ``meta`` (keywords, HISTORY) and ``tree``.

    ``references`` maps reference type to a path (or a Product with ``.path``); ``inputs``
    are the input file paths. Returns the record appended to
    ``tree["meta"]["webbcal"]["provenance"]``.
    """
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    version, vcs = webbcal.__version__, vcs_revision()
    meta["CAL_VER"] = (version, "webbcal version")
    meta["CAL_VCS"] = (vcs, "webbcal commit")
    meta["DATE"] = (now, "UTC date file created")

    ref_records = {}
    for reftype, ref in sorted(references.items()):
        path = Path(str(getattr(ref, "path", ref)))
        try:
            checksum = sha256_of(path)
        except OSError as exc:  # an in-memory or vanished reference: say so, do not fail the product
            log.warning("no checksum for %s reference %s: %s", reftype, path, exc.strerror or exc)
            checksum = None
        record = {"name": path.name, "path": str(path.resolve()), "sha256": checksum}
        ref_records[reftype] = record
        keyword = REFERENCE_KEYWORDS.get(reftype)
        if keyword:
            comment = f"{reftype} reference file"
            # A long file name leaves no room for a comment (astropy would warn and truncate).
            meta[keyword] = (path.name, comment) if len(path.name) + len(comment) < 56 else path.name
    input_names = [Path(p).name for p in inputs]

    record = {
        "date": now,
        "software": {"name": "webbcal", "version": version, "vcs": vcs},
        "parameters": _plain(step_params),
        "references": ref_records,
        "inputs": input_names,
    }
    node = tree.setdefault("meta", {}).setdefault("webbcal", {})
    node.setdefault("provenance", []).append(record)

    lines = [f"webbcal {version} ({vcs}) {now}"]
    if input_names:
        lines.append("inputs: " + ", ".join(input_names))
    for reftype, ref in ref_records.items():
        lines.append(f"ref {reftype}: {ref['name']}")
        lines.append(f"sha256:{ref['sha256'] or 'unavailable'}")  # 71 characters: one card
    lines += _parameter_lines(record["parameters"])
    for line in lines:
        # HISTORY cards hold 72 characters: wrap at spaces rather than mid-word.
        for piece in textwrap.wrap(line, _HISTORY_WIDTH, subsequent_indent="  ", break_on_hyphens=False):
            meta.add_history(piece)
    return record


def _parameter_lines(params: dict) -> list[str]:
    """One HISTORY entry per step (``params jump: rejection_threshold=4.0 ...``)."""
    flat = {key: value for key, value in params.items() if not isinstance(value, dict)}
    lines = [f"params {_assignments(flat)}"] if flat else []
    for step, values in params.items():
        if isinstance(values, dict):
            lines.append(f"params {step}: {_assignments(values)}" if values else f"params {step}: defaults")
    return lines


def _assignments(values: dict) -> str:
    return " ".join(f"{key}={value!r}" for key, value in values.items())


def _plain(value):
    """Parameters as ASDF/YAML-safe plain values (paths and numpy scalars become str/float)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
