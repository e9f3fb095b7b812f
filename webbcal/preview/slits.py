"""Where the WFSS slits of a MultiSlitModel cal lie on the grism image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from webbcal.errors import WebbcalError


@dataclass(frozen=True)
class SlitBox:
    """One extraction box, in 0-based pixels of the grism image (x along columns)."""

    x0: int
    y0: int
    width: int
    height: int
    order: int | None
    source_id: int | None


SLIT_KEYWORDS = ("SLTSTRT1", "SLTSTRT2", "SLTSIZE1", "SLTSIZE2", "SPORDER", "SOURCEID", "BUNIT")


def slit_boxes(product) -> list[SlitBox]:
    """The boxes of every slit of a Product (headers in ``ext_meta``)."""
    slits = [(n, product.ext_meta.get(f"SCI,{n}", {}), tuple(product.arrays[f"SCI,{n}"].shape[-2:]))
             for n in product.slit_numbers() if f"SCI,{n}" in product.arrays]
    return boxes_from_headers(slits, product.path)


def slit_headers(headers: list[dict]) -> list[tuple[int, dict, tuple[int, int]]]:
    """(number, header, (ny, nx)) of every SCI extension in ``headers.scan_keywords`` output."""
    return [(int(h.get("EXTVER", 1) or 1), h, (int(h.get("NAXIS2", 0) or 0), int(h.get("NAXIS1", 0) or 0)))
            for h in headers[1:] if h.get("EXTNAME") == "SCI"]


def boxes_from_headers(slits, path=None) -> list[SlitBox]:
    """Boxes from each slit's SLTSTRT1/2 (1-based) and SLTSIZE1/2 (else its cut-out's shape).

    A slit header without SLTSTRT1/2 cannot be placed: that is the file's fault, so it is
    an error naming the slit.
    """
    boxes = []
    for number, header, (ny, nx) in slits:
        missing = [k for k in ("SLTSTRT1", "SLTSTRT2") if k not in header]
        if missing:
            raise WebbcalError(path, f"slit {number} has no {'/'.join(missing)}: cannot place its box")
        boxes.append(SlitBox(
            x0=int(header["SLTSTRT1"]) - 1,
            y0=int(header["SLTSTRT2"]) - 1,
            width=int(header.get("SLTSIZE1", nx)),
            height=int(header.get("SLTSIZE2", ny)),
            order=_optional_int(header.get("SPORDER")),
            source_id=_optional_int(header.get("SOURCEID")),
        ))
    return boxes


def _optional_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def frame_shape(product, boxes: list[SlitBox]) -> tuple[int, int]:
    """(ny, nx) of the grism image: SUBSIZE2/1 from the header, else what the boxes span."""
    ny, nx = product.meta.get("SUBSIZE2"), product.meta.get("SUBSIZE1")
    if isinstance(ny, (int, np.integer)) and isinstance(nx, (int, np.integer)) and ny > 0 and nx > 0:
        return int(ny), int(nx)
    if not boxes:
        return 1, 1
    return max(b.y0 + b.height for b in boxes), max(b.x0 + b.width for b in boxes)


def paste_slits(product, boxes: list[SlitBox], shape: tuple[int, int]) -> np.ndarray:
    """The grism image rebuilt from the slits' cut-outs (NaN where no slit lies).

    Used when the exposure's rate is not at hand; overlapping slits show the last one.
    """
    frame = np.full(shape, np.nan, dtype=np.float32)
    numbers = [n for n in product.slit_numbers() if f"SCI,{n}" in product.arrays]
    for number, box in zip(numbers, boxes):
        cutout = np.asarray(product.arrays[f"SCI,{number}"], dtype=np.float32)
        if cutout.ndim == 3:  # per-integration slits: the first integration
            cutout = cutout[0]
        y0, x0 = max(box.y0, 0), max(box.x0, 0)
        y1, x1 = min(box.y0 + cutout.shape[0], shape[0]), min(box.x0 + cutout.shape[1], shape[1])
        if y1 > y0 and x1 > x0:
            frame[y0:y1, x0:x1] = cutout[y0 - box.y0:y1 - box.y0, x0 - box.x0:x1 - box.x0]
    return frame
