"""A small hand-made NIRCam exposure and its reference files, written with stdatamodels.

Used by the oracle tests when webbcal's simulator is not there (or too slow for a fast
test). The physics is kept simple but exercises every Detector1 step: a bias with
column structure, reference-pixel offsets per amplifier and odd/even columns, a flat
sky plus a few bright stars (some saturating mid-ramp), a dark current, a quadratic
non-linearity with its correction, a few cosmic-ray jumps, read noise, and some bad
pixels in the mask. Truth (the linear count rate in DN/s, the cosmic-ray pixels) is
returned alongside the file paths.

Test-only: stdatamodels is an official package (oracle side), never used by webbcal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DETECTOR = "NRCA1"
READPATT = "BRIGHT2"
NFRAMES = 2
# The full-frame frame time for every size: a real 64² subarray reads in 0.05 s, which
# would leave a test exposure with no signal; the pipeline only uses TFRAME/TGROUP.
FRAME_TIME_FULL = 10.73677
# stdatamodels DQ_DEF rows the reference files carry (reference bit value -> flag name).
DQ_DEF_ROWS = [
    (0, 1, "DO_NOT_USE", "Bad pixel not to be used"),
    (1, 2, "NO_SAT_CHECK", "No saturation check"),
    (2, 4, "HOT", "Hot pixel"),
    (3, 8, "DEAD", "Dead pixel"),
    (4, 16, "NO_LIN_CORR", "No linearity correction"),
    (5, 32, "REFERENCE_PIXEL", "Reference pixel"),
]


@dataclass
class TinyExposure:
    uncal: Path
    refs: dict[str, Path]
    truth_rate: np.ndarray            # DN/s, linear, dark excluded
    jump_pixels: np.ndarray           # bool (ny, nx): a cosmic ray hit this pixel
    truth_groups: np.ndarray | None   # (nints, ngroups, ny, nx) DN: signal + dark, non-linear,
                                      # before bias, offsets, 1/f and read noise
    bad_pixels: np.ndarray            # bool (ny, nx): DO_NOT_USE in the mask
    saturation_group: np.ndarray | None = None  # (nints, ny, nx): first saturated group, -1
    meta: dict = field(default_factory=dict)


def _ref_meta(model, reftype: str, xstart: int, ystart: int, nx: int, ny: int,
              subarray: str) -> None:
    model.meta.reftype = reftype.upper()
    model.meta.telescope = "JWST"
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.detector = DETECTOR
    model.meta.author = "webbcal tests"
    model.meta.pedigree = "DUMMY"
    model.meta.description = f"tiny test {reftype}"
    model.meta.useafter = "2022-01-01T00:00:00"
    model.meta.subarray.name = subarray
    model.meta.subarray.xstart = xstart
    model.meta.subarray.ystart = ystart
    model.meta.subarray.xsize = nx
    model.meta.subarray.ysize = ny
    model.meta.subarray.fastaxis = -1
    model.meta.subarray.slowaxis = 2


def _dq_def():
    return np.array(DQ_DEF_ROWS, dtype=[("BIT", "<i4"), ("VALUE", "<u4"), ("NAME", "S40"),
                                        ("DESCRIPTION", "S80")])


def write_tiny_exposure(outdir, *, nx: int = 64, ny: int = 64, ngroups: int = 6,
                        nints: int = 1, xstart: int = 1, ystart: int = 1,
                        row_noise: float = 0.0, seed: int = 7) -> TinyExposure:
    """Write ``outdir/tiny_uncal.fits`` and ``outdir/refs/*.fits``; return paths and truth.

    With ``xstart = ystart = 1`` the 4 reference rows/columns at the edges exist, so
    refpix has something to work on (a corner subarray, one output). ``row_noise`` (DN rms)
    adds 1/f-like noise: per frame, a row offset varying smoothly over ~10 rows, seen by
    the reference columns too.
    """
    from stdatamodels.jwst import datamodels

    outdir = Path(outdir)
    refdir = outdir / "refs"
    refdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    subarray = "GENERIC"
    tframe = FRAME_TIME_FULL
    tgroup = tframe * NFRAMES
    shape = (ny, nx)

    # --- detector properties
    bias = (12000 + 300 * rng.standard_normal(nx)[None, :]
            + 20 * rng.standard_normal(shape)).astype(np.float32)
    gain = np.full(shape, 2.0, np.float32)
    readnoise_cds = np.full(shape, 10.0, np.float32)  # DN, CDS
    dark_rate = np.full(shape, 0.01, np.float32)       # DN/s
    sat_raw = (bias + 45000).astype(np.float32)        # raw DN, bias included
    nonlin = -1.5e-6                                  # y = x + a x**2  (DN)
    refpix_mask = np.zeros(shape, bool)
    if ystart == 1:
        refpix_mask[:4, :] = True
    if xstart == 1:
        refpix_mask[:, :4] = True
    if xstart + nx - 1 == 2048:
        refpix_mask[:, -4:] = True
    if ystart + ny - 1 == 2048:
        refpix_mask[-4:, :] = True

    # --- scene: sky + stars (one saturating mid-ramp), zero on reference pixels
    rate = np.full(shape, 2.0, np.float64)
    yy, xx = np.mgrid[:ny, :nx]
    for (cy, cx, peak) in ((ny // 3, nx // 3, 40.0), (2 * ny // 3, 2 * nx // 3, 8.0),
                           (ny - 10, 12, 600.0), (ny // 2, nx - 20, 2500.0)):
        rate += peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.2 ** 2))
    rate[refpix_mask] = 0.0
    bad = np.zeros(shape, bool)
    bad[rng.integers(4, ny, 6), rng.integers(4, nx, 6)] = True

    # --- the ramp, frame by frame, averaged into groups (BRIGHT2: 2 frames per group)
    nframes_total = ngroups * NFRAMES
    t_frames = tframe * np.arange(1, nframes_total + 1)
    electrons = rng.poisson((rate * gain)[None, :, :] * tframe,
                            size=(nints, nframes_total) + shape).cumsum(axis=1)
    signal = electrons / gain + (dark_rate * t_frames[:, None, None])[None]
    # a few cosmic rays: 300-2000 DN steps in the middle of the ramp
    jump_pixels = np.zeros(shape, bool)
    ncr = max(3, nx * ny // 400)
    cr_y = rng.integers(4, ny, ncr)
    cr_x = rng.integers(4, nx, ncr)
    cr_frame = rng.integers(NFRAMES * 2, nframes_total - 1, ncr)
    for y, x, f in zip(cr_y, cr_x, cr_frame):
        signal[:, f:, y, x] += rng.uniform(300, 2000)
        jump_pixels[y, x] = True
    measured = signal + nonlin * signal ** 2
    frames = measured + bias + readnoise_cds / np.sqrt(2) * rng.standard_normal(signal.shape)
    # reference-pixel offsets, odd/even columns differing, drifting per frame
    drift = 5 * rng.standard_normal((nints, nframes_total, 1, 1))
    frames += drift + np.where(xx % 2 == 0, 3.0, -3.0)[None, None]
    if row_noise > 0:
        frames += smooth_row_noise(rng, (nints, nframes_total), ny, row_noise)[..., None]
    groups = frames.reshape(nints, ngroups, NFRAMES, ny, nx).mean(axis=2)
    truth_groups = measured.reshape(nints, ngroups, NFRAMES, ny, nx).mean(axis=2)
    # first group holding a frame above the threshold (-1: never), per integration
    saturated = measured + bias >= sat_raw
    first_frame = np.where(saturated.any(axis=1), saturated.argmax(axis=1), -1)
    saturation_group = np.where(first_frame >= 0, first_frame // NFRAMES, -1)
    raw = np.clip(np.round(groups), 0, 65535).astype(np.uint16)

    # --- uncal
    model = datamodels.Level1bModel(data=raw)
    meta = model.meta
    meta.telescope = "JWST"
    meta.instrument.name = "NIRCAM"
    meta.instrument.detector = DETECTOR
    meta.instrument.module = "A"
    meta.instrument.channel = "SHORT"
    meta.instrument.filter = "F150W"
    meta.instrument.pupil = "CLEAR"
    meta.exposure.type = "NRC_IMAGE"
    meta.exposure.readpatt = READPATT
    meta.exposure.nints = nints
    meta.exposure.ngroups = ngroups
    meta.exposure.nframes = NFRAMES
    meta.exposure.groupgap = 0
    meta.exposure.frame_divisor = NFRAMES
    meta.exposure.drop_frames1 = 0
    meta.exposure.drop_frames3 = 0
    meta.exposure.noutputs = 1
    meta.exposure.frame_time = tframe
    meta.exposure.group_time = tgroup
    meta.exposure.integration_time = tgroup * ngroups
    meta.exposure.start_time = 60000.0
    meta.exposure.mid_time = 60000.001
    meta.exposure.end_time = 60000.002
    meta.exposure.zero_frame = False
    meta.observation.date = "2024-01-01"
    meta.observation.time = "00:00:00.000"
    meta.subarray.name = subarray
    meta.subarray.xstart = xstart
    meta.subarray.ystart = ystart
    meta.subarray.xsize = nx
    meta.subarray.ysize = ny
    meta.subarray.fastaxis = -1
    meta.subarray.slowaxis = 2
    uncal = outdir / "tiny_uncal.fits"
    model.save(str(uncal))

    # --- reference files
    args = (xstart, ystart, nx, ny, subarray)
    refs: dict[str, Path] = {}

    mask_dq = np.zeros(shape, np.uint32)
    mask_dq[bad] = 1 | 8  # DO_NOT_USE | DEAD
    mask_dq[refpix_mask] |= 32  # REFERENCE_PIXEL through DQ_DEF (refpix finds them by flag)
    mask = datamodels.MaskModel(dq=mask_dq, dq_def=_dq_def())
    _ref_meta(mask, "mask", *args)
    refs["mask"] = _save(mask, refdir / "tiny_mask.fits")

    sat = datamodels.SaturationModel(data=sat_raw, dq=np.zeros(shape, np.uint32),
                                     dq_def=_dq_def())
    _ref_meta(sat, "saturation", *args)
    refs["saturation"] = _save(sat, refdir / "tiny_saturation.fits")

    superbias = datamodels.SuperBiasModel(data=bias, err=np.full(shape, 2.0, np.float32),
                                          dq=np.zeros(shape, np.uint32), dq_def=_dq_def())
    _ref_meta(superbias, "superbias", *args)
    superbias.meta.exposure.readpatt = "ANY"
    refs["superbias"] = _save(superbias, refdir / "tiny_superbias.fits")

    # correction: x = y + c2 y**2 + c3 y**3 inverts y = x + a x**2 to well below noise
    coeffs = np.zeros((5,) + shape, np.float32)
    coeffs[1] = 1.0
    coeffs[2] = -nonlin
    coeffs[3] = 2 * nonlin ** 2
    coeffs[4] = -5 * nonlin ** 3
    linearity = datamodels.LinearityModel(coeffs=coeffs, dq=np.zeros(shape, np.uint32),
                                          dq_def=_dq_def())
    _ref_meta(linearity, "linearity", *args)
    refs["linearity"] = _save(linearity, refdir / "tiny_linearity.fits")

    # each group averages frames g*NFRAMES+1 .. (g+1)*NFRAMES: mid time tgroup*g + 1.5 tframe
    group_mid_times = tgroup * np.arange(ngroups) + tframe * (NFRAMES + 1) / 2
    dark_groups = dark_rate[None] * group_mid_times[:, None, None]
    dark = datamodels.DarkModel(data=dark_groups.astype(np.float32),
                                err=np.full((ngroups,) + shape, 0.01, np.float32),
                                dq=np.zeros(shape, np.uint32), dq_def=_dq_def())
    _ref_meta(dark, "dark", *args)
    dark.meta.exposure.nframes = NFRAMES
    dark.meta.exposure.groupgap = 0
    dark.meta.exposure.ngroups = ngroups
    dark.meta.exposure.readpatt = READPATT
    dark.meta.exposure.type = "NRC_IMAGE"
    dark.meta.exposure.noutputs = 1
    refs["dark"] = _save(dark, refdir / "tiny_dark.fits")

    gain_model = datamodels.GainModel(data=gain)
    _ref_meta(gain_model, "gain", *args)
    refs["gain"] = _save(gain_model, refdir / "tiny_gain.fits")

    readnoise = datamodels.ReadnoiseModel(data=readnoise_cds)
    _ref_meta(readnoise, "readnoise", *args)
    readnoise.meta.exposure.readpatt = "ANY"
    refs["readnoise"] = _save(readnoise, refdir / "tiny_readnoise.fits")

    return TinyExposure(uncal=uncal, refs=refs, truth_rate=rate.astype(np.float32),
                        jump_pixels=jump_pixels, bad_pixels=bad,
                        truth_groups=truth_groups.astype(np.float32),
                        saturation_group=saturation_group,
                        meta={"tframe": tframe, "tgroup": tgroup, "refpix": refpix_mask})


def smooth_row_noise(rng, lead_shape, ny: int, rms: float, scale_rows: float = 10.0):
    """Row offsets correlated over ``scale_rows`` rows (Gaussian-smoothed white noise)."""
    kernel_x = np.arange(-3 * int(scale_rows), 3 * int(scale_rows) + 1)
    kernel = np.exp(-0.5 * (kernel_x / scale_rows) ** 2)
    white = rng.standard_normal(lead_shape + (ny + kernel.size - 1,))
    smooth = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), -1, white)
    return rms * smooth / smooth.std()


def _save(model, path: Path) -> Path:
    model.save(str(path))
    return path
