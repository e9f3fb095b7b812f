"""ipc: deconvolve inter-pixel capacitance with the IPC reference kernel (official ``jwst/ipc``).

Skipped by default: the official pipeline leaves it on in code but CRDS parameter files
skip it for every instrument (jwst docs), so ``skip=True`` here reproduces what users get.
When run, each group's science region (reference-pixel rows and columns are left
untouched) is convolved, zero-padded, with the kernel from the IPC reference: a 2-D
(nk, nk) kernel, or a 4-D (nk, nk, ny, nx) per-pixel kernel. The reference "kernel" is the
deconvolution kernel, so a plain convolution applies the correction.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.steps.base import StepSpec
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.ipc")

SPEC = StepSpec(
    name="ipc", stage="detector1", status_key="S_IPC", reftypes=("ipc",), skip=True,
    doc="IPC deconvolution (skipped by default, as CRDS does for all instruments).",
)

FULL = 2048
NREF = 4


def reference_margins(xstart: int, ystart: int, nx: int, ny: int) -> tuple[int, int, int, int]:
    """(bottom, top, left, right) reference rows/columns inside a subarray (0-based starts)."""
    return (max(0, NREF - ystart), max(0, ystart + ny - (FULL - NREF)),
            max(0, NREF - xstart), max(0, xstart + nx - (FULL - NREF)))


def convolve_ipc(plane: np.ndarray, kernel: np.ndarray,
                 margins: tuple[int, int, int, int]) -> None:
    """Convolve the science region of one 2-D ``plane`` with ``kernel`` in place.

    ``kernel`` is (nk, nk) or (nk, nk, ny, nx) (per pixel, already cut to ``plane``).
    Terms are summed in the official order (centre last) so results agree bit for bit.
    """
    bottom, top, left, right = margins
    ky, kx = kernel.shape[:2]
    ny, nx = plane.shape[0] - bottom - top, plane.shape[1] - left - right
    if ny <= 0 or nx <= 0:
        return
    pad_b, pad_l = ky // 2, kx // 2
    padded = np.zeros((ny + ky - 1, nx + kx - 1), dtype=plane.dtype)
    region = (slice(bottom, bottom + ny), slice(left, left + nx))
    padded[pad_b:pad_b + ny, pad_l:pad_l + nx] = plane[region]
    out = plane[region]
    out[...] = 0.0
    per_pixel = kernel.ndim == 4
    mid_j, mid_i = ky // 2, kx // 2
    order = [(j, i) for j in range(ky) for i in range(kx) if (j, i) != (mid_j, mid_i)]
    for j, i in order + [(mid_j, mid_i)]:
        js, is_ = ky - j - 1, kx - i - 1
        shifted = padded[js:js + ny, is_:is_ + nx]
        weight = kernel[j, i][region] if per_pixel else kernel[j, i]
        out += weight * shifted


def correct_ipc(data: np.ndarray, kernel: np.ndarray, margins: tuple[int, int, int, int]) -> None:
    """Apply :func:`convolve_ipc` to every group of every integration of ``data``."""
    for integration in data:
        for plane in integration:
            convolve_ipc(plane, kernel, margins)


def kernel_for_subarray(kernel: np.ndarray, xstart: int, ystart: int, nx: int, ny: int) -> np.ndarray:
    """Cut a 4-D full-frame kernel to the subarray; 2-D kernels pass through."""
    if kernel.ndim == 2 or kernel.shape[-2:] == (ny, nx):
        return kernel
    if ystart + ny > kernel.shape[-2] or xstart + nx > kernel.shape[-1]:
        raise ValueError(f"IPC kernel {kernel.shape} does not cover the subarray")
    return kernel[:, :, ystart:ystart + ny, xstart:xstart + nx]


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    ipc_ref = refs.get("ipc")
    if ipc_ref is None:
        log.warning("no IPC reference: ipc skipped")
        return "SKIPPED"
    ny, nx = ramp.data.shape[-2:]
    xstart = int(ramp.meta.get("SUBSTRT1", 1)) - 1
    ystart = int(ramp.meta.get("SUBSTRT2", 1)) - 1
    kernel = np.asarray(ipc_ref.arrays["SCI"])
    if kernel.ndim not in (2, 4):
        raise WebbcalError(getattr(ipc_ref, "path", "ipc"), f"IPC kernel must be 2-D or 4-D, got {kernel.shape}")
    try:
        kernel = kernel_for_subarray(kernel, xstart, ystart, nx, ny)
    except ValueError as exc:
        raise WebbcalError(getattr(ipc_ref, "path", "ipc"), str(exc)) from None
    correct_ipc(ramp.data, kernel, reference_margins(xstart, ystart, nx, ny))
    return "COMPLETE"
