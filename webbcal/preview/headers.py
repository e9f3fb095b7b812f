"""Read chosen keywords of every HDU straight from the header blocks.

A WFSS cal holds one set of extensions per slit: hundreds of slits, thousands of HDUs.
Parsing every card of every header with astropy (``scan_file``) takes seconds; the
picture needs a handful of keywords per slit, so this reads the 2880-byte header blocks
itself, keeps those keywords, and seeks over the data (size from BITPIX/NAXISn/PCOUNT/GCOUNT).
An image's data is then a memory map at the recorded offset: drawing a rate or a mosaic
needs neither astropy.io.fits nor asdf (about 0.5 s of imports per preview job).
"""

from __future__ import annotations

import math
import os

import numpy as np

from webbcal.errors import WebbcalError

BLOCK = 2880
CARD = 80
STRUCTURE = ("XTENSION", "EXTNAME", "EXTVER", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "BZERO", "BSCALE")
# Where each HDU's data starts in the file (bytes), added to every scanned header.
DATA_OFFSET = "_data_offset"
IMAGE_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def parse_value(text: str):
    """A card's value field: quoted string, logical, integer or float (None if empty)."""
    text = text.strip()
    if text.startswith("'"):
        value, index = [], 1
        while index < len(text):
            char = text[index]
            if char == "'":
                if text[index + 1:index + 2] == "'":  # '' is an escaped quote
                    value.append("'")
                    index += 2
                    continue
                break
            value.append(char)
            index += 1
        return "".join(value).rstrip()
    text = text.split("/", 1)[0].strip()
    if text in ("T", "F"):
        return text == "T"
    for kind in (int, float):
        try:
            return kind(text.replace("D", "E") if kind is float else text)
        except ValueError:
            pass
    return None if not text else text


def scan_keywords(path, keywords) -> list[dict]:
    """For each HDU in order: its wanted ``keywords``, the structural ones, and where its
    data starts (``DATA_OFFSET``)."""
    wanted = set(keywords) | set(STRUCTURE)
    headers = []
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        while handle.tell() < size:
            cards = read_header(handle, wanted, path)
            if not cards and not headers:
                raise WebbcalError(path, "not a FITS file (no SIMPLE card at the start)")
            cards[DATA_OFFSET] = handle.tell()
            headers.append(cards)
            handle.seek(padded(data_bytes(cards)), os.SEEK_CUR)
        if handle.tell() > size:
            where = headers[-1].get("EXTNAME", f"HDU {len(headers) - 1}")
            raise WebbcalError(path, f"truncated: extension {where} ends after the file does")
    return headers


def read_header(handle, wanted: set, path) -> dict:
    cards, first = {}, True
    while True:
        block = handle.read(BLOCK)
        if len(block) < BLOCK:
            raise WebbcalError(path, "truncated: a header block is incomplete")
        for start in range(0, BLOCK, CARD):
            card = block[start:start + CARD].decode("ascii", "replace")
            key = card[:8].rstrip()
            if first and key not in ("SIMPLE", "XTENSION"):
                return {}
            first = False
            if key == "END":
                return cards
            if key in wanted and card[8:10] == "= ":
                cards[key] = parse_value(card[10:])
            elif key.startswith("NAXIS") and card[8:10] == "= ":
                cards[key] = parse_value(card[10:])


def data_bytes(cards: dict) -> int:
    naxis = int(cards.get("NAXIS", 0) or 0)
    if naxis == 0:
        return 0
    elements = math.prod(int(cards.get(f"NAXIS{i}", 0) or 0) for i in range(1, naxis + 1))
    groups, extra = int(cards.get("GCOUNT", 1) or 1), int(cards.get("PCOUNT", 0) or 0)
    return abs(int(cards.get("BITPIX", 8))) // 8 * groups * (extra + elements)


def padded(nbytes: int) -> int:
    return -(-nbytes // BLOCK) * BLOCK


def primary_keywords(path, keywords) -> dict:
    """The wanted keywords of the primary header only (one or two blocks read)."""
    with open(path, "rb") as handle:
        cards = read_header(handle, set(keywords) | set(STRUCTURE), path)
    if not cards:
        raise WebbcalError(path, "not a FITS file (no SIMPLE card at the start)")
    return cards


def image_plane(path, header: dict) -> np.ndarray:
    """An image HDU's data as float32 (BSCALE/BZERO applied); a cube gives its first plane,
    read from a memory map so the other planes are never touched."""
    bitpix = int(header.get("BITPIX", 0))
    naxis = int(header.get("NAXIS", 0) or 0)
    if bitpix not in IMAGE_DTYPES or naxis == 0:
        raise WebbcalError(path, f"extension {header.get('EXTNAME', '?')} is not an image")
    shape = tuple(int(header[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
    data = np.memmap(path, dtype=IMAGE_DTYPES[bitpix], mode="r", offset=header[DATA_OFFSET], shape=shape)
    plane = np.asarray(data[0] if data.ndim == 3 else data, dtype=np.float32)
    scale, zero = float(header.get("BSCALE", 1) or 1), float(header.get("BZERO", 0) or 0)
    return plane * scale + zero if (scale, zero) != (1.0, 0.0) else plane
