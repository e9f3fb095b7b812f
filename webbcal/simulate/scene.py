"""The sky: a catalog of stars and Sérsic galaxies with SEDs, and the sky background.

Catalog columns (one row per source; an astropy ``Table``):

``id`` int, ``ra``/``dec`` deg (ICRS), ``is_extended`` bool, ``flux_<FILTER>`` Jy for every
filter of ``FILTERS`` (band-averaged f_ν of the SED over a top-hat bandpass),
``r_eff`` arcsec (half-light radius, 0 for stars), ``sersic_n``, ``axis_ratio`` (b/a),
``theta`` deg (major axis from North through East, i.e. a sky position angle),
and the SED: ``sed_ref_flux`` Jy at ``sed_ref_wave`` µm, ``sed_slope`` β in
``f_ν ∝ λ^β``, and up to ``MAX_LINES`` emission lines ``line<k>_wave`` µm,
``line<k>_flux`` erg s⁻¹ cm⁻², ``line<k>_sigma`` µm (Gaussian in λ; 0 flux = no line).
Evaluate a source's spectrum with ``sed_flux_jy(row, wavelength_um)``.

Numbers: filter bandpasses are top-hats at the NIRCam half-power wavelengths (JDox
"NIRCam Filters"); magnitudes follow Euclidean-like number counts (slope 0.3 dex/mag) from
``MAG_RANGE``; the sky levels are representative zodiacal levels at medium ecliptic latitude
(F150W 0.075 MJy/sr as in the official test data, see official_pipeline_offline.md).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from webbcal.errors import WebbcalError

C_UM_S = 2.99792458e14  # speed of light, µm/s
JY = 1e-23  # erg s⁻¹ cm⁻² Hz⁻¹

# Top-hat bandpasses (µm), JDox half-power cut-ons/offs.
BANDPASS_UM = {
    "F070W": (0.624, 0.781), "F090W": (0.795, 1.005), "F115W": (1.013, 1.282),
    "F150W": (1.331, 1.668), "F200W": (1.755, 2.226), "F210M": (1.992, 2.201),
    "F277W": (2.423, 3.132), "F356W": (3.135, 3.981), "F410M": (3.864, 4.301),
    "F444W": (3.881, 4.982),
}
FILTERS = ("F150W", "F200W", "F277W", "F356W", "F444W")

# Sky surface brightness (MJy/sr), zodiacal light + thermal for LW.
SKY_MJY_SR = {"F070W": 0.10, "F090W": 0.10, "F115W": 0.09, "F150W": 0.075, "F200W": 0.08,
              "F210M": 0.08, "F277W": 0.10, "F356W": 0.14, "F410M": 0.22, "F444W": 0.25}

MAX_LINES = 2
MAG_RANGE = {"star": (17.0, 28.0), "galaxy": (20.0, 28.5)}  # AB at 2 µm
COUNT_SLOPE = 0.3  # dN/dm ∝ 10^(0.3 m)
STAR_FRACTION = 0.35
# Rest-frame lines placed at a random redshift so that they land in 1–5 µm.
REST_LINES_UM = (0.6563, 0.5007)  # Hα, [OIII]


def sky_background(filter_name: str) -> float:
    try:
        return SKY_MJY_SR[filter_name.upper()]
    except KeyError:
        raise WebbcalError("filter", f"no sky level for filter {filter_name!r}") from None


def sed_flux_jy(row, wavelength_um):
    """f_ν (Jy) of one catalog row at ``wavelength_um`` (scalar or array, µm)."""
    lam = np.asarray(wavelength_um, float)
    flux = row["sed_ref_flux"] * (lam / row["sed_ref_wave"]) ** row["sed_slope"]
    for k in range(1, MAX_LINES + 1):
        line_flux = row[f"line{k}_flux"]
        if line_flux > 0:
            mu, sig = row[f"line{k}_wave"], row[f"line{k}_sigma"]
            f_lambda = line_flux / (np.sqrt(2 * np.pi) * sig) * np.exp(-0.5 * ((lam - mu) / sig) ** 2)
            flux = flux + f_lambda * lam**2 / C_UM_S / JY  # per-µm → per-Hz, then Jy
    return flux


def band_flux_jy(row, filter_name: str, nsamp: int = 400) -> float:
    """Mean f_ν over the top-hat bandpass (photon-weighted ∝ 1/λ for f_ν)."""
    lo, hi = BANDPASS_UM[filter_name]
    lam = np.linspace(lo, hi, nsamp)
    w = 1.0 / lam
    return float(np.sum(sed_flux_jy(row, lam) * w) / np.sum(w))


def _magnitudes(rng, n, lo, hi):
    """Draw AB magnitudes with dN/dm ∝ 10^(slope·m) on [lo, hi] (inverse CDF)."""
    a = COUNT_SLOPE * np.log(10)
    u = rng.random(n)
    return np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a


def make_catalog(rng, ra0: float, dec0: float, width_arcsec: float, nsources: int,
                 star_fraction: float = STAR_FRACTION) -> Table:
    """Random sources uniformly in a ``width_arcsec`` square centred on (ra0, dec0)."""
    n = int(nsources)
    is_ext = rng.random(n) >= star_fraction
    half = width_arcsec / 2 / 3600.0
    dec = dec0 + rng.uniform(-half, half, n)
    ra = ra0 + rng.uniform(-half, half, n) / np.cos(np.deg2rad(dec0))
    mag = np.where(is_ext, _magnitudes(rng, n, *MAG_RANGE["galaxy"]), _magnitudes(rng, n, *MAG_RANGE["star"]))
    t = Table()
    t["id"] = np.arange(1, n + 1, dtype=np.int32)
    t["ra"], t["dec"] = ra % 360.0, dec
    t["is_extended"] = is_ext
    t["sed_ref_wave"] = np.full(n, 2.0)
    t["sed_ref_flux"] = 3631.0 * 10 ** (-0.4 * mag)
    # Stars: Rayleigh-Jeans-like fall (β ≈ 2 in f_ν … −0.5); galaxies: flat to red.
    t["sed_slope"] = np.where(is_ext, rng.uniform(-0.5, 1.5, n), rng.uniform(-2.0, 0.5, n))
    faint = np.clip((mag - 20.0) / 8.0, 0, 1)
    t["r_eff"] = np.where(is_ext, rng.uniform(0.06, 0.5, n) * (1.3 - faint), 0.0)
    t["sersic_n"] = np.where(is_ext, rng.uniform(0.6, 4.0, n), 0.0)
    t["axis_ratio"] = np.where(is_ext, rng.uniform(0.35, 1.0, n), 1.0)
    t["theta"] = np.where(is_ext, rng.uniform(0, 180, n), 0.0)
    # Emission lines for half of the galaxies: Hα and [OIII] at z with Hα in 1–4.9 µm.
    has_lines = is_ext & (rng.random(n) < 0.5)
    z = rng.uniform(0.6, 6.3, n)
    cont_flambda = t["sed_ref_flux"] * JY * C_UM_S / 2.0**2  # erg/s/cm²/µm at 2 µm
    for k, rest in enumerate(REST_LINES_UM, start=1):
        ew_um = rng.uniform(0.005, 0.05, n) * (1 + z)  # observed-frame equivalent width
        t[f"line{k}_wave"] = np.where(has_lines, rest * (1 + z), 0.0)
        t[f"line{k}_flux"] = np.where(has_lines, cont_flambda * ew_um, 0.0)
        t[f"line{k}_sigma"] = np.where(has_lines, rest * (1 + z) * 150e3 / 2.998e8 * 3, 0.0)
    for f in FILTERS:
        t[f"flux_{f}"] = [band_flux_jy(row, f) for row in t]
    t.meta["description"] = "webbcal simulated scene; fluxes in Jy, positions ICRS deg"
    return t


def flux_column(filter_name: str) -> str:
    if filter_name.upper() not in FILTERS:
        raise WebbcalError("filter", f"the scene has fluxes for {', '.join(FILTERS)}, not {filter_name!r}")
    return f"flux_{filter_name.upper()}"


# --- the absolute astrometric reference catalog --------------------------------------------

# Gaia-like in content and format, deeper than Gaia (G ≈ 21), as a catalog from an earlier
# HST/JWST epoch tied to Gaia would be: a NIRCam SW detector holds only ~1 Gaia star per
# arcmin² at high latitude, too few for tweakreg's abs_minobj = 15.
REFCAT_MAG_LIMIT = 25.5          # AB in the simulated filter
REFCAT_ERROR_AT_LIMIT_MAS = 3.0  # per axis; ∝ 1/sqrt(flux) brighter, as for Gaia
REFCAT_ERROR_FLOOR_MAS = 0.2
REFCAT_EPOCH = 2016.0


def reference_catalog(catalog: Table, filter_name: str, rng) -> tuple[Table, Table]:
    """(refcat, truth) of the stars brighter than ``REFCAT_MAG_LIMIT`` in ``filter_name``.

    refcat: ``source_id``, ``RA``, ``DEC`` (deg, ICRS; true positions plus a Gaussian error
    per axis), ``ra_error``/``dec_error`` (mas, the error's sigma), ``mag`` (AB) and
    ``ref_epoch``; no proper motions (the simulated stars do not move), so it is valid at
    any epoch. ``tweakreg.abs_refcat`` reads it as it is. truth: the same rows with the
    true positions and the errors actually drawn (mas, along RA·cos δ and Dec).
    """
    flux = np.asarray(catalog[flux_column(filter_name)], float)
    with np.errstate(divide="ignore"):
        mag = np.where(flux > 0, -2.5 * np.log10(flux / 3631.0), np.inf)
    keep = ~np.asarray(catalog["is_extended"], bool) & (mag <= REFCAT_MAG_LIMIT)
    ra_true = np.asarray(catalog["ra"], float)[keep]
    dec_true = np.asarray(catalog["dec"], float)[keep]
    mag = mag[keep]
    sigma = np.maximum(REFCAT_ERROR_AT_LIMIT_MAS * 10 ** (0.2 * (mag - REFCAT_MAG_LIMIT)),
                       REFCAT_ERROR_FLOOR_MAS)
    err = rng.normal(0.0, 1.0, (2, keep.sum())) * sigma  # mas
    ra = (ra_true + err[0] / 3.6e6 / np.cos(np.deg2rad(dec_true))) % 360.0
    dec = dec_true + err[1] / 3.6e6
    ids = np.asarray(catalog["id"])[keep]
    refcat = Table({"source_id": ids, "RA": ra, "DEC": dec, "ra_error": sigma, "dec_error": sigma,
                    "mag": mag, "ref_epoch": np.full(ids.size, REFCAT_EPOCH)},
                   units={"RA": "deg", "DEC": "deg", "ra_error": "mas", "dec_error": "mas", "mag": "mag"})
    refcat.meta["comment"] = (f"webbcal simulated astrometric reference catalog: stars to AB "
                              f"{REFCAT_MAG_LIMIT} in {filter_name}, Gaia-like errors, no proper motion")
    truth = Table({"source_id": ids, "ra_true": ra_true, "dec_true": dec_true,
                   "error_ra_cosdec_mas": err[0], "error_dec_mas": err[1], "sigma_mas": sigma},
                  units={"ra_true": "deg", "dec_true": "deg"})
    return refcat, truth
