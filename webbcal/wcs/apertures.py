"""Approximate NIRCam detector placement in the telescope (V2, V3) frame.

Values are rounded, SIAF-like numbers for the full-frame apertures (``NRCA1_FULL`` …):
reference point (V2Ref, V3Ref) in arcsec at the detector centre, V3IdlYAngle in degrees,
VIdlParity = −1 for every NIRCam aperture, nominal pixel scale (JDox: SW 0.031″/px,
LW 0.063″/px). [Recollections of PRD/SIAF values, not a SIAF copy: good to ~1″, which is
irrelevant for a self-consistent simulation.] The sky orientation follows from these and
ROLL_REF through the distortion model; FASTAXIS/SLOWAXIS per detector follow the refpix
recollection in detector1.md §4.6 (also unverified).
"""

from __future__ import annotations

from dataclasses import dataclass

from webbcal.errors import WebbcalError


@dataclass(frozen=True)
class Aperture:
    detector: str
    module: str
    channel: str  # SHORT / LONG
    v2_ref: float  # arcsec
    v3_ref: float  # arcsec
    v3_idl_yang: float  # deg
    vparity: int
    scale: float  # arcsec / pixel, nominal
    fastaxis: int
    slowaxis: int


_SW, _LW = 0.031, 0.063

APERTURES = {
    a.detector: a
    for a in (
        Aperture("NRCA1", "A", "SHORT", 120.60, -527.38, -0.55, -1, _SW, -1, 2),
        Aperture("NRCA2", "A", "SHORT", 120.30, -459.65, -0.42, -1, _SW, 1, -2),
        Aperture("NRCA3", "A", "SHORT", 51.50, -527.50, -0.35, -1, _SW, -1, 2),
        Aperture("NRCA4", "A", "SHORT", 52.80, -459.80, -0.20, -1, _SW, 1, -2),
        Aperture("NRCALONG", "A", "LONG", 86.10, -493.23, -0.28, -1, _LW, -1, 2),
        Aperture("NRCB1", "B", "SHORT", -120.60, -459.60, 0.27, -1, _SW, 1, -2),
        Aperture("NRCB2", "B", "SHORT", -120.00, -527.50, 0.30, -1, _SW, -1, 2),
        Aperture("NRCB3", "B", "SHORT", -51.50, -459.50, 0.10, -1, _SW, 1, -2),
        Aperture("NRCB4", "B", "SHORT", -52.50, -527.60, 0.15, -1, _SW, -1, 2),
        Aperture("NRCBLONG", "B", "LONG", -86.00, -493.20, 0.02, -1, _LW, 1, -2),
    )
}


def aperture(detector: str) -> Aperture:
    try:
        return APERTURES[detector.upper()]
    except KeyError:
        raise WebbcalError("detector", f"unknown NIRCam detector {detector!r} "
                           f"(known: {', '.join(APERTURES)})") from None
