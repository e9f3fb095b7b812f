"""Association pools: one row per exposure, the input of association generation.

Two sources, one result (a ``Pool`` of rows of lower-case strings):

* ``read_pool``: the official ``|``-separated pool table (``*_pool.csv``), read like
  ``jwst/associations/pool.py``: column names and values lower-cased, empty cells "null".
* ``pool_from_exposures``: the primary headers of a directory (or list) of FITS exposures,
  like ``jwst/associations/mkpool.py``: every keyword a column, plus the columns the
  headers cannot give (observation candidate, pointing type, target id per TARGNAME).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

from webbcal.errors import WebbcalError

# Values that mean "not set" in a pool (dms_base._EMPTY, lower-cased).
EMPTY = frozenset({"", "null", "--", "n", "f", "false", "n/a"})

# Columns mkpool adds because no Level-1b header holds them.
_NON_HEADER_DEFAULTS = {"dms_note": "", "is_imprt": "f", "pntgtype": "science", "mostilno": "1", "dithptin": "1"}
_IGNORED_KEYWORDS = ("", "COMMENT", "HISTORY")


@dataclass
class Pool:
    """Rows (exposure → column → lower-case string) and the pool's file name (``asn_pool``)."""

    rows: list[dict[str, str]]
    name: str


def is_set(value) -> bool:
    return value is not None and str(value).lower() not in EMPTY


def candidates_of(row: dict) -> list[tuple[str, str]]:
    """The row's association candidates, e.g. ``[('o001', 'observation'), ('c1000', 'mosaic')]``."""
    text = row.get("asn_candidate", "")
    try:
        parsed = ast.literal_eval(text) if is_set(text) else []
    except (ValueError, SyntaxError):
        return []
    if isinstance(parsed, tuple) and len(parsed) == 2 and all(isinstance(x, str) for x in parsed):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return []
    return [(str(c[0]).lower(), str(c[1]).lower()) for c in parsed
            if isinstance(c, (tuple, list)) and len(c) == 2]


def read_pool(path: str | os.PathLike, delimiter: str = "|") -> Pool:
    """Read an official association pool table."""
    from astropy.io.ascii import convert_numpy
    from astropy.table import Table

    path = Path(path)
    try:
        table = Table.read(path, format="ascii", delimiter=delimiter,
                           converters={"*": [convert_numpy(str)]}, guess=False)
    except FileNotFoundError:
        raise WebbcalError(path, "pool file not found") from None
    except Exception as exc:  # astropy raises many types for malformed tables
        raise WebbcalError(path, f"not a readable '{delimiter}'-separated pool table: {exc}") from None
    table = table.filled("null") if table.masked or table.has_masked_values else table
    names = [name.lower() for name in table.colnames]
    if "filename" not in names:
        raise WebbcalError(path, "pool has no FILENAME column")
    rows = [{name: str(value).lower() for name, value in zip(names, row)} for row in table.iterrows()]
    if not rows:
        raise WebbcalError(path, "pool has no rows")
    return Pool(rows=rows, name=path.name)


def exposure_files(directory: str | os.PathLike) -> list[Path]:
    """The Level-1b exposures of a directory (``*_uncal.fits``; any ``*.fits`` if none)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise WebbcalError(directory, "not a directory")
    files = sorted(directory.glob("*_uncal.fits")) or sorted(directory.glob("*.fits"))
    if not files:
        raise WebbcalError(directory, "no FITS exposures (*_uncal.fits) in the directory")
    return files


def pool_from_exposures(files_or_directory, name: str | None = None) -> Pool:
    """Build a pool from exposures' primary headers (like ``mkpool``).

    FILENAME is the file's name on disk (case kept: it is what the workflow reads); every
    other value is lower-cased as when an official pool is read. Deviation from mkpool:
    TARGETID is the index of the exposure's TARGNAME in order of first appearance (mkpool
    assigns the running count, which repeats a later id when a target comes back).
    """
    from astropy.io import fits

    if isinstance(files_or_directory, (str, os.PathLike)):
        directory = Path(files_or_directory)
        files = exposure_files(directory)
        name = name or f"{directory.name or 'exposures'}_pool.csv"
    else:
        files = [Path(f) for f in files_or_directory]
        if not files:
            raise WebbcalError(None, "no exposures given to build a pool from")
        name = name or "exposures_pool.csv"

    target_ids: dict[str, str] = {}
    rows = []
    for file in files:
        try:
            header = fits.getheader(file, ext=0)
        except (OSError, ValueError, IndexError) as exc:
            raise WebbcalError(file, f"cannot read the primary header: {exc}") from None
        row = {key.lower(): str(value).lower() for key, value in header.items() if key not in _IGNORED_KEYWORDS}
        row.update(_NON_HEADER_DEFAULTS)
        observation = row.get("observtn")
        if not is_set(observation):
            raise WebbcalError(file, "header has no OBSERVTN: cannot tell the observation candidate")
        if observation.isdigit():
            observation = f"{int(observation):03d}"
        row["asn_candidate"] = str([(f"o{observation}", "observation")])
        targname = row.get("targname", "null")
        row["targetid"] = target_ids.setdefault(targname, str(len(target_ids) + 1))
        row["filename"] = file.name
        rows.append(row)
    columns = sorted({key for row in rows for key in row})
    rows = [{key: row.get(key, "null") for key in columns} for row in rows]
    return Pool(rows=rows, name=name)
