"""Point-spread functions with an analytic encircled energy, and pixel-integrated rendering.

Each filter's PSF is a circular Moffat profile ``I(r) ∝ (1 + r²/α²)^(−β)`` whose FWHM is the
JDox "NIRCam Point Spread Functions" value for that filter; β = 2.5 gives JWST-like
wings (1 − EE ≈ 1e-3 at 10 FWHM). Its encircled energy is analytic,
``EE(r) = 1 − (1 + r²/α²)^(1−β)``, and ``FWHM = 2α·sqrt(2^(1/β) − 1)``.

Rendering integrates over pixels by supersampling (``OVERSAMPLE`` points per axis), so the
image of a star is the PSF convolved with the pixel box; ``encircled_energy_pixelated``
gives the matching EE curve that the APCORR reference uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from webbcal.errors import WebbcalError

MOFFAT_BETA = 2.5
OVERSAMPLE = 5  # sub-samples per pixel axis (odd: a pixel centre is a sub-sample)

# PSF FWHM in arcsec (JDox "NIRCam Point Spread Functions", empirical table).
FWHM_ARCSEC = {
    "F070W": 0.023, "F090W": 0.030, "F115W": 0.037, "F150W": 0.050, "F200W": 0.066,
    "F210M": 0.068, "F277W": 0.092, "F356W": 0.116, "F410M": 0.137, "F444W": 0.145,
}


@dataclass(frozen=True)
class MoffatPSF:
    fwhm_pix: float
    beta: float = MOFFAT_BETA

    @property
    def alpha(self) -> float:
        return self.fwhm_pix / (2.0 * np.sqrt(2.0 ** (1.0 / self.beta) - 1.0))

    def profile(self, r2):
        """Surface density (per pix²) normalised to unit total flux, at squared radius r2."""
        a2 = self.alpha**2
        return (self.beta - 1.0) / (np.pi * a2) * (1.0 + r2 / a2) ** (-self.beta)

    def encircled_energy(self, r):
        return 1.0 - (1.0 + (np.asarray(r, float) / self.alpha) ** 2) ** (1.0 - self.beta)

    def radius_for_ee(self, ee):
        return self.alpha * np.sqrt((1.0 - np.asarray(ee, float)) ** (1.0 / (1.0 - self.beta)) - 1.0)

    def stamp_radius(self, total: float, lost: float = 0.05) -> int:
        """Half size (pix) of a stamp that loses < max(lost/total, …) of the flux, ≤ 256."""
        frac = min(1e-4, lost / max(total, 1e-30))
        return int(np.clip(np.ceil(self.radius_for_ee(1.0 - frac)), 6, 256))


def psf_for(filter_name: str, pixel_scale: float) -> MoffatPSF:
    try:
        fwhm = FWHM_ARCSEC[filter_name.upper()]
    except KeyError:
        raise WebbcalError("filter", f"no PSF for filter {filter_name!r} (known: {', '.join(FWHM_ARCSEC)})") from None
    return MoffatPSF(fwhm / pixel_scale)


def _subgrid(n_pix: int, os: int):
    """Sub-sample offsets (pix) from the stamp origin of an n_pix stamp, os per pixel."""
    return (np.arange(n_pix * os) + 0.5) / os - 0.5


def add_point_source(image, psf: MoffatPSF, x: float, y: float, total: float):
    """Add ``total`` (e.g. DN/s) of a pixel-integrated PSF centred at (x, y) into ``image``."""
    ny, nx = image.shape
    r = psf.stamp_radius(total)
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    x0, x1 = max(ix - r, 0), min(ix + r + 1, nx)
    y0, y1 = max(iy - r, 0), min(iy + r + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return
    os = OVERSAMPLE
    sx = x0 + _subgrid(x1 - x0, os) - x
    sy = y0 + _subgrid(y1 - y0, os) - y
    vals = psf.profile(sy[:, None] ** 2 + sx[None, :] ** 2)
    pix = vals.reshape(y1 - y0, os, x1 - x0, os).mean(axis=(1, 3))
    image[y0:y1, x0:x1] += (total * pix).astype(image.dtype)


def sersic_bn(n: float) -> float:
    """b_n of the Sérsic profile (Ciotti & Bertin 1999 asymptotic expansion)."""
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2) + 131 / (1148175 * n**3)


def add_sersic(image, psf: MoffatPSF, x, y, total, r_eff_pix, n, q, theta_deg, oversample=3):
    """Add a PSF-convolved Sérsic galaxy of ``total`` flux (normalised within its stamp).

    theta is the major-axis angle from +x, counter-clockwise (deg).
    """
    ny, nx = image.shape
    rp = psf.stamp_radius(1.0)  # PSF kernel half size
    r = int(np.clip(np.ceil(6 * r_eff_pix + 3), 5, 200))
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    x0, x1 = ix - r, ix + r + 1
    y0, y1 = iy - r, iy + r + 1
    if x1 <= 0 or y1 <= 0 or x0 >= nx or y0 >= ny:
        return
    os = oversample
    sx = x0 + _subgrid(x1 - x0, os) - x
    sy = y0 + _subgrid(y1 - y0, os) - y
    c, s = np.cos(np.deg2rad(theta_deg)), np.sin(np.deg2rad(theta_deg))
    u = sx[None, :] * c + sy[:, None] * s
    v = -sx[None, :] * s + sy[:, None] * c
    rr = np.sqrt(u**2 + (v / q) ** 2)
    gal = np.exp(-sersic_bn(n) * ((rr / r_eff_pix) ** (1.0 / n) - 1.0))
    gal *= total / gal.sum()
    k = (np.arange(-rp * os, rp * os + 1)) / os
    kern = psf.profile(k[:, None] ** 2 + k[None, :] ** 2)
    kern /= kern.sum()
    conv = fftconvolve(gal, kern, mode="full")
    pad = rp * os
    # The full convolution extends the stamp by the kernel half size; bin it to pixels.
    cy0, cx0 = y0 - rp, x0 - rp
    full = conv.reshape(conv.shape[0] // os, os, conv.shape[1] // os, os).sum(axis=(1, 3)) if (
        conv.shape[0] % os == 0) else None
    if full is None:  # kernel length 2·rp·os+1 is odd: trim one sub-row/col of zero-ish edge
        conv = conv[: conv.shape[0] - (conv.shape[0] % os), : conv.shape[1] - (conv.shape[1] % os)]
        full = conv.reshape(conv.shape[0] // os, os, conv.shape[1] // os, os).sum(axis=(1, 3))
    del pad
    hy, hx = full.shape
    ya, yb = max(cy0, 0), min(cy0 + hy, ny)
    xa, xb = max(cx0, 0), min(cx0 + hx, nx)
    if ya < yb and xa < xb:
        image[ya:yb, xa:xb] += full[ya - cy0:yb - cy0, xa - cx0:xb - cx0].astype(image.dtype)


def encircled_energy_pixelated(psf: MoffatPSF, radii, boxes: int = 1, os: int = 9, half: int = 40):
    """EE(r) of the PSF convolved with ``boxes`` unit pixel boxes, measured with exact
    circular apertures on a fine grid (what aperture photometry on the image recovers)."""
    n = 2 * half * os + 1
    g = (np.arange(n) - half * os) / os
    img = psf.profile(g[:, None] ** 2 + g[None, :] ** 2) / os**2
    box = np.ones((os, os)) / os**2
    for _ in range(boxes):
        img = fftconvolve(img, box, mode="same")
    rad = np.hypot(g[:, None], g[None, :]).ravel()
    order = np.argsort(rad)
    cum = np.cumsum(img.ravel()[order])
    total = img.sum() / psf.encircled_energy(half)  # account for flux outside the grid
    idx = np.searchsorted(rad[order], np.atleast_1d(radii), side="right")
    return np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0) / total


def encircled_energy_measured(psf: MoffatPSF, radii, boxes: int = 2, os: int = 9, half: int = 30,
                              phases: int = 3):
    """EE(r) as circular-aperture photometry measures it on a pixelated image.

    The image is the PSF convolved with ``boxes`` unit pixel boxes (1: a detector image,
    3: a drizzled mosaic at the same scale with pixfrac 1, see
    ``references.MOSAIC_PIXEL_BOXES``), *sampled* at pixel centres;
    photutils ``exact`` apertures then treat each pixel as uniform. The result is averaged
    over ``phases``² sub-pixel source positions. This is what APCORR must invert.
    ``os`` must be odd (a centred box kernel) and a multiple of ``phases``.
    """
    from photutils.aperture import CircularAperture, aperture_photometry

    n = 2 * half * os
    g = (np.arange(n) - n / 2 + 0.5) / os  # sub-sample centres, source at 0
    img = psf.profile(g[:, None] ** 2 + g[None, :] ** 2) / os**2
    box = np.ones((os, os)) / os**2
    for _ in range(boxes):
        img = fftconvolve(img, box, mode="same")
    total = psf.encircled_energy(half)
    radii = np.atleast_1d(np.asarray(radii, float))
    sums = np.zeros(radii.size)
    for py in range(phases):
        for px in range(phases):
            oy, ox = (py * os) // phases, (px * os) // phases
            sampled = img[oy::os, ox::os] * os**2  # value at pixel centres (x pixel area 1)
            cy = (n / 2 - 0.5 - oy) / os
            cx = (n / 2 - 0.5 - ox) / os
            apers = [CircularAperture((cx, cy), r) for r in radii]
            tab = aperture_photometry(sampled, apers)
            sums += np.array([tab[f"aperture_sum_{k}"][0] for k in range(radii.size)])
    return sums / phases**2 / total
