"""Snowball flagging for NIR detectors (stcal ``jump.flag_large_events``).

A snowball is a large cosmic-ray event with a saturated core and a halo of jumps. For
each integration and group g >= 1, connected regions (8-connectivity) of newly
saturated pixels (g and g+1) and of JUMP_DET pixels are described by the ellipse of
equal second moments. A jump region is a snowball when it is near the detector edge or
contains the centre of a new-saturation region; it is then flagged JUMP_DET over an
enlarged ellipse. Large saturated cores are enlarged and flagged SATURATED from g on,
and optionally JUMP_DET in the first groups of the next integration.

Region measurements and ellipse drawing follow the scikit-image definitions stcal uses
(``regionprops`` axis lengths and orientation, ``draw.ellipse``), re-implemented here
with numpy/scipy so that the same pixels are flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from webbcal import dqflags

SAT = dqflags.SATURATED
JUMP = dqflags.JUMP_DET
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class SnowballSettings:
    min_sat_area: float = 1.0
    min_jump_area: float = 5.0
    expand_factor: float = 2.0
    sat_required_snowball: bool = True
    min_sat_radius_extend: float = 2.5
    sat_expand: int = 4              # added to the core diameter (2 x the step's radius)
    edge_size: int = 25
    mask_snowball_core_next_int: bool = True
    persist_groups: int = 0          # groups of the next integration that get the cores
    max_extended_width: int = 400    # 2 x max_extended_radius


# An ellipse is ((centre_col, centre_row), (minor_axis - 1, major_axis - 1), angle_deg).
Ellipse = tuple


def _moments(image: np.ndarray, center: tuple[float, float], order: int = 3) -> np.ndarray:
    """Central moments mu[i, j] = sum (r - r0)^i (c - c0)^j over the region image."""
    calc = image.astype(np.float64)
    orders = np.arange(order + 1, dtype=np.float64)
    labels = [0, 1]
    for dim, length in enumerate(image.shape):
        delta = np.arange(length, dtype=np.float64) - center[dim]
        powers = delta[:, np.newaxis] ** orders
        calc = np.einsum(calc, labels[:dim] + [2] + labels[dim + 1:], powers, [2, 3],
                         labels[:dim] + [3] + labels[dim + 1:], optimize="greedy")
    return calc


def label_regions(plane: np.ndarray) -> tuple[np.ndarray, list]:
    """8-connected regions of the non-zero pixels: label image and bounding boxes."""
    from scipy import ndimage  # ~1 s to import: only when snowballs are wanted
    labels, _ = ndimage.label(plane != 0, structure=_EIGHT_CONNECTED)
    return labels, ndimage.find_objects(labels)


def region_ellipses(plane: np.ndarray, min_area: float, regions=None,
                    selected: np.ndarray | None = None) -> list[Ellipse]:
    """Moment ellipses of connected regions whose hole-filled area is >= ``min_area``.

    ``regions`` is ``label_regions(plane)`` if already computed; ``selected`` (one bool
    per region) skips regions known not to matter.
    """
    from scipy import ndimage

    labels, boxes = label_regions(plane) if regions is None else regions
    ellipses = []
    for index, box in enumerate(boxes, start=1):
        if box is None or (selected is not None and not selected[index - 1]):
            continue
        image = labels[box] == index
        if np.sum(ndimage.binary_fill_holes(image, _EIGHT_CONNECTED)) < min_area:
            continue
        offset = np.array([box[0].start, box[1].start])
        centroid = (np.argwhere(image) + offset).mean(axis=0)
        raw = _moments(image.astype(np.uint8), (0.0, 0.0))
        local = (raw[1, 0] / raw[0, 0], raw[0, 1] / raw[0, 0])
        mu = _moments(image.astype(np.uint8), local)
        mu0 = mu[0, 0]
        diag = np.array([mu[2, 0], mu[0, 2]])
        tensor = np.zeros((2, 2))
        tensor[0, 0], tensor[1, 1] = (np.sum(diag) - diag) / mu0
        tensor[0, 1] = tensor[1, 0] = -mu[1, 1] / mu0
        eig = np.clip(np.linalg.eigvalsh(tensor), 0, None)
        major, minor = 4 * math.sqrt(max(eig)), 4 * math.sqrt(min(eig))
        a, b, _, c = tensor.flat
        if a - c == 0:
            orientation = math.pi / 4.0 if b < 0 else -math.pi / 4.0
        else:
            orientation = 0.5 * math.atan2(-2 * b, c - a)
        ellipses.append(((float(centroid[1]), float(centroid[0])), (minor - 1, major - 1),
                         np.degrees(orientation)))
    return ellipses


def possible_snowballs(boxes: list, cores: list[Ellipse], low: float, high: float) -> np.ndarray:
    """Regions that may be near the edge or contain a core centre (a cheap, safe superset).

    The centroid lies in the bounding box and the moment ellipse's semi-major axis,
    2·sqrt(largest inertia eigenvalue) - 1/2, is below twice the box diagonal, so a
    region whose box grown by that much holds no core centre cannot be a snowball.
    """
    valid = [b is not None for b in boxes]
    bounds = np.array([(b[0].start, b[0].stop - 1, b[1].start, b[1].stop - 1) if b else (0, 0, 0, 0)
                       for b in boxes], dtype=float).reshape(-1, 4)
    r0, r1, c0, c1 = bounds.T
    near_edge = (c0 < low) | (r0 < low) | (c1 > high) | (r1 > high)
    selected = near_edge
    if cores:
        margin = 2.0 * np.hypot(r1 - r0 + 1, c1 - c0 + 1) + 1.0
        centres = np.array([core[0] for core in cores])  # (col, row)
        cx, cy = centres[:, 0][None, :], centres[:, 1][None, :]
        inside = ((cy >= (r0 - margin)[:, None]) & (cy <= (r1 + margin)[:, None])
                  & (cx >= (c0 - margin)[:, None]) & (cx <= (c1 + margin)[:, None]))
        selected = selected | inside.any(axis=1)
    return selected & np.array(valid, dtype=bool)


def _ellipse_pixels(shape, row, col, row_radius, col_radius, angle_deg):
    """Pixels strictly inside a rotated ellipse (as ``skimage.draw.ellipse``)."""
    if row_radius == 0 or col_radius == 0:
        return np.array([], int), np.array([], int)
    rotation = np.radians(angle_deg) % np.pi
    sin_a, cos_a = np.sin(rotation), np.cos(rotation)
    center = np.array([row, col], dtype=float)
    radii_rot = np.array([abs(row_radius * cos_a) + col_radius * sin_a,
                          row_radius * sin_a + abs(col_radius * cos_a)])
    upper_left = np.maximum(np.ceil(center - radii_rot).astype(int), 0)
    lower_right = np.minimum(np.floor(center + radii_rot).astype(int), np.array(shape) - 1)
    r0, c0 = center - upper_left
    nrow, ncol = lower_right - upper_left + 1
    r = np.arange(0, float(max(nrow, 0)))[:, None] - r0
    c = np.arange(0, float(max(ncol, 0)))[None, :] - c0
    distance = (((r * cos_a + c * sin_a) / row_radius) ** 2
                + ((r * sin_a - c * cos_a) / col_radius) ** 2)
    rr, cc = np.nonzero(distance < 1)
    return rr + upper_left[0], cc + upper_left[1]


def ellipse_mask(ellipse_center, axis1, axis2, angle, shape):
    """(row slice, col slice, mask) of a filled ellipse of full axes ``axis1``/``axis2``."""
    yc, xc = round(ellipse_center[0]), round(ellipse_center[1])  # col, row
    half = max(round(axis1 / 2), round(axis2 / 2)) + 2
    ix1, ix2 = max(yc - half, 0), min(yc + half + 1, shape[1])
    iy1, iy2 = max(xc - half, 0), min(xc + half + 1, shape[0])
    mask = np.zeros((max(iy2 - iy1, 0), max(ix2 - ix1, 0)), dtype=bool)
    rr, cc = _ellipse_pixels(mask.shape, xc - iy1, yc - ix1, round(axis2 / 2),
                             round(axis1 / 2), angle)
    mask[rr, cc] = True
    return slice(iy1, iy2), slice(ix1, ix2), mask


def _inside(point, ellipse) -> bool:
    angle = np.radians(180 - ellipse[2])
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    xc = point[0] - ellipse[0][0]
    yc = point[1] - ellipse[0][1]
    xct = xc * cos_a - yc * sin_a
    yct = xc * sin_a + yc * cos_a
    if ellipse[1][1] >= ellipse[1][0]:
        major, minor = ellipse[1][1] * 0.5, ellipse[1][0] * 0.5
    else:
        major, minor = ellipse[1][0] * 0.5, ellipse[1][1] * 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        return bool((xct ** 2 / major ** 2) + (yct ** 2 / minor ** 2) <= 1)


def _near_edge(ellipse, low, high) -> bool:
    (x, y) = ellipse[0]
    return x < low or y < low or x > high or y > high


def _expanded_axes(ellipse, expansion, max_width):
    minor_like, major_like = ellipse[1]
    if major_like < minor_like:
        axis1 = minor_like + (expansion - 1.0) * major_like
        axis2 = major_like * expansion
    else:
        axis1 = minor_like * expansion
        axis2 = major_like + (expansion - 1.0) * minor_like
    return round(min(axis1, max_width) / 2), round(min(axis2, max_width) / 2)


def _extend_cores(cube, group, sat_ellipses, s: SnowballSettings, persist):
    """Enlarge big saturated cores (SATURATED from ``group`` on) and record them."""
    shape = cube.shape[1:]
    for ell in sat_ellipses:
        if min(ell[1][1], ell[1][0]) <= s.min_sat_radius_extend:
            continue
        axis1 = min(ell[1][0] + s.sat_expand, s.max_extended_width)
        axis2 = min(ell[1][1] + s.sat_expand, s.max_extended_width)
        rows, cols, mask = ellipse_mask(ell[0], axis1, axis2, ell[2], shape)
        for g in range(group, cube.shape[0]):
            cube[g][rows, cols][mask] = SAT
        rows, cols, mask = ellipse_mask(ell[0], ell[1][0], ell[1][1], ell[2], shape)
        persist[rows, cols][mask] = JUMP


def flag_snowballs(groupdq: np.ndarray, s: SnowballSettings) -> int:
    """Flag snowballs in ``groupdq`` (nints, ngroups, ny, nx) in place; returns their number."""
    nints, ngroups, nrows, _ = groupdq.shape
    persist = np.zeros((nints,) + groupdq.shape[2:], dtype=np.uint8)
    total = 0
    low, high = s.edge_size, max(0, nrows - s.edge_size)
    for i in range(nints):
        for g in range(1, ngroups):
            current_sat = (groupdq[i, g] & SAT) != 0
            new_sat = current_sat & ((groupdq[i, g - 1] & SAT) == 0)
            sat_ellipses = region_ellipses(new_sat, s.min_sat_area)
            regions = label_regions(groupdq[i, g] & JUMP)
            if s.sat_required_snowball:
                cores = list(sat_ellipses)
                if g < ngroups - 1:  # saturation that starts in the next group counts too
                    next_new_sat = ((groupdq[i, g + 1] & SAT) != 0) & ~current_sat
                    cores += region_ellipses(next_new_sat, s.min_sat_area)
                selected = possible_snowballs(regions[1], cores, low, high)
                snowballs = [jump for jump in region_ellipses(None, s.min_jump_area, regions,
                                                              selected)
                             if _near_edge(jump, low, high)
                             or any(_inside(core[0], jump) for core in cores)]
                _extend_cores(groupdq[i], g, sat_ellipses, s, persist[i])
            else:
                snowballs = region_ellipses(None, s.min_jump_area, regions)
            total += len(snowballs)
            for ell in snowballs:
                half1, half2 = _expanded_axes(ell, s.expand_factor, s.max_extended_width)
                rows, cols, mask = ellipse_mask(ell[0], half1 * 2, half2 * 2, ell[2],
                                                groupdq.shape[2:])
                mask &= (groupdq[i, g][rows, cols] & SAT) == 0
                groupdq[i, g][rows, cols] |= mask.astype(np.uint8) * np.uint8(JUMP)
    if s.mask_snowball_core_next_int and s.persist_groups >= 1:
        last = min(s.persist_groups, ngroups)
        for i in range(1, nints):
            groupdq[i, 1:last] |= persist[i - 1]
    return total
