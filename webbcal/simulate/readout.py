"""NIRCam readout: patterns, subarrays, frame time, and the timing keywords of an exposure.

Numbers and where they come from (see /work/shared/spec/detector1.md §6):

* Readout patterns (NFRAMES averaged on board per group, GROUPGAP frames dropped between
  groups, max NGROUPS): JDox "NIRCam Detector Readout Patterns" = the NIRCam table of
  ``jwst/dark_current/tests/test_dark_sub.py``.
* Frame time (JDox "NIRCam Detector Subarrays"), 10 µs per pixel clock:
  4 outputs: ``((ncols/4 + 12)·(nrows + 1) + 1) × 10 µs`` (full frame 10.73677 s);
  1 output:  ``(ncols + 12)·(nrows + 2) × 10 µs``.
* ``TGROUP = (NFRAMES + GROUPGAP)·TFRAME`` (jwst ramp_fit / tests).
* Subarray corners: imaging subarrays are read through one output and placed here at the
  detector corner that holds reference pixels (SUBSTRT 1,1), so the one-output refpix
  algorithm has reference rows/columns to use. [Real per-detector SUBSTRT values differ
  and were not available offline; the sizes and output counts follow JDox.]
"""

from __future__ import annotations

from dataclasses import dataclass

from webbcal.errors import WebbcalError

PIXEL_CLOCK_S = 10e-6  # NIRCam pixel dwell time (JDox "NIRCam Detector Readout")
FULL_SIZE = 2048  # H2RG format
REFERENCE_BORDER = 4  # reference pixels on every edge of the full frame


@dataclass(frozen=True)
class ReadPattern:
    name: str
    nframes: int
    groupgap: int
    max_ngroups: int


READ_PATTERNS = {
    p.name: p
    for p in (
        ReadPattern("RAPID", 1, 0, 10),
        ReadPattern("BRIGHT1", 1, 1, 10),
        ReadPattern("BRIGHT2", 2, 0, 10),
        ReadPattern("SHALLOW2", 2, 3, 10),
        ReadPattern("SHALLOW4", 4, 1, 10),
        ReadPattern("MEDIUM2", 2, 8, 10),
        ReadPattern("MEDIUM8", 8, 2, 10),
        ReadPattern("DEEP2", 2, 18, 20),
        ReadPattern("DEEP8", 8, 12, 20),
    )
}


@dataclass(frozen=True)
class Subarray:
    """A readout window in DMS (science) orientation; ``xstart``/``ystart`` are 1-based."""

    name: str
    xstart: int
    ystart: int
    xsize: int
    ysize: int
    noutputs: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ysize, self.xsize)

    @property
    def slices(self) -> tuple[slice, slice]:
        """numpy (rows, cols) slices of this window in a full-frame array."""
        y0, x0 = self.ystart - 1, self.xstart - 1
        return slice(y0, y0 + self.ysize), slice(x0, x0 + self.xsize)

    def keywords(self) -> dict:
        return {"SUBARRAY": self.name, "SUBSTRT1": self.xstart, "SUBSTRT2": self.ystart,
                "SUBSIZE1": self.xsize, "SUBSIZE2": self.ysize}


SUBARRAYS = {
    s.name: s
    for s in (
        Subarray("FULL", 1, 1, 2048, 2048, 4),
        Subarray("SUB640", 1, 1, 640, 640, 1),
        Subarray("SUB320", 1, 1, 320, 320, 1),
        Subarray("SUB160", 1, 1, 160, 160, 1),
        Subarray("SUB400P", 1, 1, 400, 400, 1),
        Subarray("SUB64P", 1, 1, 64, 64, 1),
    )
}


def read_pattern(name: str) -> ReadPattern:
    try:
        return READ_PATTERNS[name.upper()]
    except KeyError:
        raise WebbcalError("readpatt", f"unknown NIRCam read pattern {name!r} "
                           f"(known: {', '.join(READ_PATTERNS)})") from None


def subarray(name: str) -> Subarray:
    try:
        return SUBARRAYS[name.upper()]
    except KeyError:
        raise WebbcalError("subarray", f"unknown NIRCam imaging subarray {name!r} "
                           f"(known: {', '.join(SUBARRAYS)})") from None


def frame_time(nrows: int, ncols: int, noutputs: int) -> float:
    """Seconds to read one frame of ``nrows`` × ``ncols`` pixels (JDox formula)."""
    if noutputs == 4:
        return ((ncols // 4 + 12) * (nrows + 1) + 1) * PIXEL_CLOCK_S
    if noutputs == 1:
        return (ncols + 12) * (nrows + 2) * PIXEL_CLOCK_S
    raise WebbcalError("noutputs", f"NIRCam reads through 1 or 4 outputs, not {noutputs}")


@dataclass(frozen=True)
class ExposureTiming:
    """The frame/group schedule of one exposure (all integrations identical)."""

    pattern: ReadPattern
    window: Subarray
    ngroups: int
    nints: int

    def __post_init__(self):
        if not 1 <= self.ngroups <= self.pattern.max_ngroups:
            raise WebbcalError("ngroups", f"{self.pattern.name} allows 1..{self.pattern.max_ngroups} "
                               f"groups, not {self.ngroups}")
        if self.nints < 1:
            raise WebbcalError("nints", f"NINTS must be >= 1, not {self.nints}")

    @property
    def tframe(self) -> float:
        return frame_time(self.window.ysize, self.window.xsize, self.window.noutputs)

    @property
    def tgroup(self) -> float:
        return (self.pattern.nframes + self.pattern.groupgap) * self.tframe

    @property
    def nframes_total(self) -> int:
        """Frames clocked per integration from the reset to the last read (incl. dropped)."""
        p = self.pattern
        return self.ngroups * p.nframes + (self.ngroups - 1) * p.groupgap

    def read_frame_indices(self):
        """0-based frame index (from the reset) of every read frame, shape (ngroups, nframes)."""
        import numpy as np

        p = self.pattern
        g = np.arange(self.ngroups)[:, None]
        return g * (p.nframes + p.groupgap) + np.arange(p.nframes)[None, :]

    @property
    def integration_duration(self) -> float:
        """Reset to the end of the last frame (s); one extra frame time for the reset."""
        return (self.nframes_total + 1) * self.tframe

    def keywords(self) -> dict:
        """Timing keywords of the primary header (JWST keyword dictionary definitions).

        EFFINTTM: photon-collecting time of an integration measured by the slope,
        ``(NGROUPS−1)·TGROUP`` for NGROUPS > 1 (first to last group), else the one-group
        time ``(NFRAMES+1)/2·TFRAME``. TMEASURE is the same quantity, EFFEXPTM/XPOSURE
        multiply it by NINTS; DURATION/TELAPSE span resets and dropped frames.
        """
        p = self.pattern
        if self.ngroups > 1:
            effint = (self.ngroups - 1) * self.tgroup
        else:
            effint = (p.nframes + 1) / 2 * self.tframe
        duration = self.nints * self.integration_duration
        return {
            "READPATT": p.name, "NFRAMES": p.nframes, "GROUPGAP": p.groupgap,
            "NGROUPS": self.ngroups, "NINTS": self.nints, "FRMDIVSR": p.nframes,
            "NRESETS": 1, "NRSTSTRT": 1, "DRPFRMS1": 0, "DRPFRMS3": 0,
            "NOUTPUTS": self.window.noutputs,
            "TSAMPLE": PIXEL_CLOCK_S * 1e6,
            "TFRAME": round(self.tframe, 5), "TGROUP": round(self.tgroup, 5),
            "EFFINTTM": round(effint, 5), "EFFEXPTM": round(effint * self.nints, 5),
            "XPOSURE": round(effint * self.nints, 5), "TMEASURE": round(effint, 5),
            "DURATION": round(duration, 5), "TELAPSE": round(duration, 5),
            "CHRGTIME": round(effint, 5),
        }
