"""Read and write association JSON files.

``read_association`` turns every defect into a one-line ``WebbcalError(path, problem)``
before any pipeline job starts: not JSON, not an object, missing or mistyped required keys,
a member listed twice in a product, and (``check_members=True``) member files missing next
to the association or exposures of more than one instrument.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from webbcal.asn.model import DEGRADED_STATUS_OK, Association, Member, Product
from webbcal.errors import WebbcalError
from webbcal.io.atomic import atomic_write_text

# Top-level keys that are plain strings in the model; anything else goes to ``extra``.
_STRING_KEYS = ("asn_type", "asn_rule", "asn_id", "asn_pool", "program", "target", "degraded_status")

# Suffixes stripped from a member name to make a Level-2 product name (jwst/lib/suffix.py, abridged).
_KNOWN_SUFFIX = re.compile(r"_(uncal|rate|rateints|bsub|bsubints|cal|calints|crf|crfints|i2d|s2d|x1d|x1dints)$")


def read_association(path: str | os.PathLike, check_members: bool = False) -> Association:
    """Parse and validate an association file.

    With ``check_members`` every member must exist relative to the association's directory,
    and the FITS members that exist must all come from one instrument (INSTRUME).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebbcalError(path, f"cannot read association: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WebbcalError(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    asn = association_from_dict(data, path)
    duplicates = [p for p in asn.problems() if "appears" in p]
    if duplicates:
        raise WebbcalError(path, duplicates[0])
    if check_members:
        check_member_files(asn, path)
    return asn


def association_from_dict(data, path: str | os.PathLike | None = None) -> Association:
    """Build an Association from decoded JSON, naming ``path`` in any error."""
    if not isinstance(data, dict):
        raise WebbcalError(path, f"an association must be a JSON object, got {_json_kind(data)}")
    if "products" not in data:
        raise WebbcalError(path, "missing required key 'products'")
    if not isinstance(data["products"], list) or not data["products"]:
        raise WebbcalError(path, "'products' must be a non-empty list")
    products = [_product(raw, i, path) for i, raw in enumerate(data["products"])]
    fields = {}
    for key in _STRING_KEYS:
        if key in data:
            if not isinstance(data[key], str):
                raise WebbcalError(path, f"'{key}' must be a string, got {_json_kind(data[key])}")
            fields[key] = data[key]
    version_id = data.get("version_id")
    if version_id is not None and not isinstance(version_id, str):
        raise WebbcalError(path, f"'version_id' must be a string or null, got {_json_kind(version_id)}")
    extra = {k: v for k, v in data.items() if k not in _STRING_KEYS and k not in ("products", "version_id")}
    fields.setdefault("degraded_status", DEGRADED_STATUS_OK)
    order = tuple(key for key in data if key != "products")
    return Association(products=products, version_id=version_id, extra=extra, key_order=order, **fields)


def _product(raw, index: int, path) -> Product:
    where = f"products[{index}]"
    if not isinstance(raw, dict):
        raise WebbcalError(path, f"{where} must be an object, got {_json_kind(raw)}")
    if "members" not in raw:
        raise WebbcalError(path, f"{where} is missing required key 'members'")
    if not isinstance(raw["members"], list) or not raw["members"]:
        raise WebbcalError(path, f"{where}.members must be a non-empty list")
    members = [_member(m, f"{where}.members[{j}]", path) for j, m in enumerate(raw["members"])]
    name = raw.get("name")
    if name is None:
        name = _default_product_name(members)
    if not isinstance(name, str) or not name:
        raise WebbcalError(path, f"{where}.name must be a non-empty string")
    extra = {k: v for k, v in raw.items() if k not in ("name", "members")}
    return Product(name=name, members=members, extra=extra)


def _member(raw, where: str, path) -> Member:
    if not isinstance(raw, dict):
        raise WebbcalError(path, f"{where} must be an object, got {_json_kind(raw)}")
    for key in ("expname", "exptype"):
        if key not in raw:
            raise WebbcalError(path, f"{where} is missing required key '{key}'")
        if not isinstance(raw[key], str) or not raw[key]:
            raise WebbcalError(path, f"{where}.{key} must be a non-empty string")
    extra = {k: v for k, v in raw.items() if k not in ("expname", "exptype")}
    return Member(expname=raw["expname"], exptype=raw["exptype"], extra=extra)


def _default_product_name(members: list[Member]) -> str | None:
    """Like the official loader: the science member's file name without extension and suffix."""
    science = [m for m in members if m.exptype.lower() == "science"]
    if not science:
        return None
    stem = Path(science[0].expname).name.split(".")[0]
    return _KNOWN_SUFFIX.sub("", stem)


def member_path(asn_path: str | os.PathLike, member: Member) -> Path:
    """Where a member lives: relative names resolve against the association's directory."""
    expname = Path(member.expname)
    return expname if expname.is_absolute() else Path(asn_path).parent / expname


def check_member_files(asn: Association, path) -> None:
    """Every member exists; existing FITS members share one INSTRUME."""
    from astropy.io import fits

    instruments: dict[str, str] = {}
    for product in asn.products:
        for member in product.members:
            file = member_path(path, member)
            if not file.exists():
                raise WebbcalError(path, f"member {member.expname!r} of product {product.name!r} "
                                         f"not found in {file.parent}")
            if file.suffix.lower() in (".fits", ".fit") and file.stat().st_size > 0:
                try:
                    instrument = str(fits.getval(file, "INSTRUME", ext=0)).strip().upper()
                except (OSError, KeyError, IndexError):
                    continue  # no readable header: nothing to compare; the stage reports the file itself
                instruments.setdefault(instrument, member.expname)
    if len(instruments) > 1:
        listing = ", ".join(f"{inst} ({name})" for inst, name in sorted(instruments.items()))
        raise WebbcalError(path, f"members come from more than one instrument: {listing}")


def write_association(asn: Association, path: str | os.PathLike) -> Path:
    """Write the association as indented JSON, atomically; returns the path."""
    return atomic_write_text(path, json.dumps(asn.to_dict(), indent=4) + "\n")


def _json_kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
