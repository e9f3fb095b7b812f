"""NIRCam H2RG detector physics: from an illuminated count rate to raw uint16 ramps.

Public API (stable; the WFSS simulator calls it with a dispersed rate image)::

    state = make_detector_state("NRCA1", seed)            # full-frame detector
    sci, zeroframe, truth = simulate_ramps(rate_dn_s, setup, state, rng)

* ``rate_dn_s`` (ny, nx) float: the count rate (DN/s) a perfectly uniform detector would
  record from the scene — sky and sources, **without dark current**, in the exposure's
  window (subarray) in DMS orientation. The detector multiplies it by its pixel response
  (``state.qe``: QE/gain variations, dead and low-QE pixels) and adds dark current.
* ``setup``: an ``ExposureSetup`` (readout timing + options).
* ``state``: a full-frame ``DetectorState``; it is cut to the setup's window here.
* ``rng``: a ``numpy.random.Generator`` (one per exposure for order independence).
* returns ``sci`` uint16 (nints, ngroups, ny, nx) raw DN including bias, ``zeroframe``
  uint16 (nints, ny, nx) or None, and ``truth``: dict with ``rate`` (DN/s the pipeline
  should recover: rate_dn_s × qe, no dark), ``cosmic_rays`` (structured array: event,
  int, group, frame, y, x, deposit_dn), ``saturation_group`` (first group whose average
  contains a saturated frame, −1 if none; per integration), ``persistence_e_s`` (afterglow
  left for later exposures, or None), ``window`` (the Subarray) and ``end_time_s``.

Physics per read frame (frames read and averaged on board, GROUPGAP frames dropped, as in
readout.py): electrons accumulate as Poisson increments of (illumination + dark +
persistence); cosmic-ray charge is added at its arrival frame; the linear signal
L = Q/gain is capped at the full well; the measured signal is the inverse of the
LINEARITY polynomial (so the reference inverts it exactly); frames are averaged into
groups; then bias, per-output odd/even offsets (varying per group), row-correlated 1/f
noise common to the whole row (reference columns included) and white read noise are added
and the result digitised to 0–65535. Reference pixels (4-pixel border) get no light, no dark
and no cosmic rays. Group-level read/1/f noise is drawn once per group with the variance
of an average of NFRAMES independent frames (statistically identical, NFRAMES× cheaper).

Saturation: the linear signal stops at the full well; pixels whose bias + saturated signal
would pass ``ADC_CEILING_DN`` get a shallower well (the 16-bit ADC is the limit).

Numbers (detector1.md §6.4 averages): gain 2.05 (SW) / 1.82 (LW) e/DN ± 3 % per pixel;
CDS read noise 15.8 e (SW) / 13.3 e (LW); dark 1.9 / 34.2 e/ks; well 105,750 / 83,300 e;
IPC nearest-neighbour 0.53 % / 0.59 %. Non-linearity: the measured signal at full well is
~8 % below linear (NIRCam detectors: 5–10 %). Cosmic rays: 5 events cm⁻² s⁻¹ on 18 µm
pixels (JDox "NIRCam Detector Overview"/"Cosmic rays"), ≈ 14,600 per 10-group BRIGHT2 full
frame as quoted in official_pipeline_offline.md; deposits log-normal with median 1,200 e
(σ_ln 0.9) plus 1–8 % spill into each edge neighbour (charge diffusion); no snowballs.
Bad pixels (of the light-sensitive area): 0.1 % dead, 0.05 % hot (1–10 DN/s), 0.3 % warm
(0.05–0.5 DN/s), 0.2 % low QE (0.3–0.7), all flagged with DO_NOT_USE in the mask. Row
(1/f) noise 2.5 DN rms per frame, output offsets 30 DN per integration + 1.5 DN per group
drift (assumed values, chosen so that refpix matters but leaves ~read-noise residuals).
Persistence (option) is a toy model: saturated pixels leave 0.5 e/s per unit over-fill
(≤ 10) decaying with τ = 900 s; it makes exposures depend on their order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.simulate.readout import FULL_SIZE, REFERENCE_BORDER, ExposureTiming, Subarray
from webbcal.wcs.apertures import aperture

# --- detector constants ----------------------------------------------------------------
CHANNEL_CONSTANTS = {
    # gain e/DN, CDS read noise e, dark e/s, full well e, IPC nearest-neighbour fraction
    "SHORT": dict(gain=2.05, rn_cds_e=15.77, dark_e_s=1.9e-3, well_e=105_750.0, ipc=0.0053),
    "LONG": dict(gain=1.82, rn_cds_e=13.25, dark_e_s=34.2e-3, well_e=83_300.0, ipc=0.0059),
}
BIAS_LEVEL_DN = 12_000.0  # typical NIRCam superbias level
NONLIN_A = (0.07, 0.01)  # quadratic term of linear/measured − 1 at full well (mean, sd)
NONLIN_B = (0.02, 0.005)  # cubic term
EXACT_BELOW_DN = 2_000.0  # cheap non-linearity below this linear signal (see _nonlinear_response)
ADC_CEILING_DN = 64_500.0  # highest raw level of a saturated pixel (below 65535 + offsets)
SATURATION_MARGIN = 0.98  # SATURATION threshold = bias + 0.98 × measured signal at full well
ROW_NOISE_DN = 2.5  # rms of the row-correlated 1/f noise per frame
OFFSET_INT_DN = 30.0  # per-integration output offsets (odd/even columns separately)
OFFSET_GROUP_DN = 1.5  # drift of those offsets from group to group
CR_RATE_CM2_S = 5.0
PIXEL_PITCH_CM = 18e-4
CR_MEDIAN_E, CR_SIGMA_LN = 1200.0, 0.9
CR_SPILL = (0.01, 0.08)
BAD_PIXEL_FRACTIONS = {"DEAD": 0.001, "HOT": 0.0005, "WARM": 0.003, "LOW_QE": 0.002}
PERSISTENCE_TAU_S = 900.0  # e-folding time of the toy persistence model
PERSISTENCE_AMPLITUDE_E_S = 0.5  # per saturated pixel, per unit over-fill (capped at 10)


@dataclass
class DetectorState:
    """Every static property of one detector (full frame or a cut-out), DMS orientation."""

    detector: str
    channel: str
    xstart: int  # 1-based origin of these arrays in the full frame
    ystart: int
    fastaxis: int
    slowaxis: int
    gain: np.ndarray  # e/DN
    readnoise_cds: np.ndarray  # DN
    superbias: np.ndarray  # DN
    dark_rate: np.ndarray  # linear DN/s
    qe: np.ndarray  # relative response (flat, without pixel-area)
    lin_coeffs: np.ndarray  # (4, ny, nx): linear = Σ c_k measured^k
    full_well: np.ndarray  # linear DN
    mask: np.ndarray  # uint32 standard DQ bits
    ipc_nn: float
    persistence_e_s: np.ndarray | None = None
    persistence_epoch: float = 0.0  # MJD-seconds at which persistence_e_s applies

    @property
    def shape(self) -> tuple[int, int]:
        return self.gain.shape

    @property
    def saturation_measured(self) -> np.ndarray:
        """Measured (bias-free) DN reached at full well."""
        return linear_to_measured(self.full_well, self.lin_coeffs)

    @property
    def reference_pixels(self) -> np.ndarray:
        return reference_pixel_mask(self.shape, self.xstart, self.ystart)

    def cut(self, window: Subarray) -> "DetectorState":
        if (self.xstart, self.ystart) != (1, 1) or self.shape != (FULL_SIZE, FULL_SIZE):
            raise WebbcalError(self.detector, "only a full-frame detector state can be cut")
        sl = window.slices
        arrays = {name: getattr(self, name)[sl] for name in (
            "gain", "readnoise_cds", "superbias", "dark_rate", "qe", "full_well", "mask")}
        pers = None if self.persistence_e_s is None else self.persistence_e_s[sl]
        return replace(self, xstart=window.xstart, ystart=window.ystart,
                       lin_coeffs=self.lin_coeffs[(slice(None),) + sl], persistence_e_s=pers, **arrays)


def reference_pixel_mask(shape, xstart=1, ystart=1) -> np.ndarray:
    """True on the 4-pixel full-frame reference border falling inside this window."""
    ny, nx = shape
    yy = np.arange(ny) + ystart - 1
    xx = np.arange(nx) + xstart - 1
    edge_y = (yy < REFERENCE_BORDER) | (yy >= FULL_SIZE - REFERENCE_BORDER)
    edge_x = (xx < REFERENCE_BORDER) | (xx >= FULL_SIZE - REFERENCE_BORDER)
    return edge_y[:, None] | edge_x[None, :]


def detector_columns(nx: int, xstart: int, fastaxis: int) -> np.ndarray:
    """Detector-frame column index of every DMS column (for output and parity)."""
    full = np.arange(nx) + xstart - 1
    return (FULL_SIZE - 1 - full) if fastaxis < 0 else full


# --- non-linearity ---------------------------------------------------------------------

def measured_to_linear(measured, coeffs):
    """The LINEARITY polynomial (Horner): linear = c0 + c1·M + c2·M² + c3·M³."""
    out = coeffs[-1] * np.ones_like(measured)
    for c in coeffs[-2::-1]:
        out = out * measured + c
    return out


def linear_to_measured(linear, coeffs):
    """Invert the LINEARITY polynomial: quartic series reversion, then one Newton step
    (relative error ~1e-6 up to full well, float32 arithmetic)."""
    c2, c3 = coeffs[2], coeffs[3]
    x = c2 * linear
    y = c3 * linear * linear
    m = linear * (1.0 - x + (2 * x * x - y) + 5 * x * (y - x * x))
    m2 = m * m
    f = m + c2 * m2 + c3 * m2 * m - linear
    m -= f / (1.0 + 2 * c2 * m + 3 * c3 * m2)
    return m


# --- the detector ---------------------------------------------------------------------

def make_detector_state(detector: str, seed: int) -> DetectorState:
    """A full-frame detector with realistic structure, reproducible from ``seed``."""
    ap = aperture(detector)
    const = CHANNEL_CONSTANTS[ap.channel]
    rng = np.random.default_rng([seed, 7919, sum(map(ord, ap.detector))])
    n = FULL_SIZE
    shape = (n, n)
    det_cols = detector_columns(n, 1, ap.fastaxis)
    amp = det_cols // 512

    gain = (const["gain"] * (1 + 0.02 * (amp - 1.5) / 1.5)[None, :]
            * (1 + 0.03 * rng.standard_normal(shape))).astype(np.float32)
    rn_dn = (const["rn_cds_e"] / const["gain"]) * (1 + 0.06 * rng.standard_normal(shape))
    readnoise = np.clip(rn_dn, 3.0, None).astype(np.float32)

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    bias = (BIAS_LEVEL_DN + np.array([-400.0, 250.0, -150.0, 500.0])[amp][None, :]
            + 150.0 * (yy - 0.5) + 80.0 * np.cos(3.0 * xx + 1.0)
            + 20.0 * rng.standard_normal(n)[None, :] + 35.0 * rng.standard_normal(shape))
    superbias = bias.astype(np.float32)

    dark = const["dark_e_s"] / const["gain"] * rng.lognormal(0.0, 0.5, shape)
    qe = (1.0 + 0.02 * np.sin(5 * xx) * np.cos(4 * yy) + 0.01 * rng.standard_normal(shape))
    mask = np.zeros(shape, np.uint32)

    refpix = reference_pixel_mask(shape)
    nflag = {k: int(round(f * n * n)) for k, f in BAD_PIXEL_FRACTIONS.items()}
    picks = rng.choice(np.flatnonzero(~refpix), size=sum(nflag.values()), replace=False)
    start = 0
    for kind, count in nflag.items():
        idx = np.unravel_index(picks[start:start + count], shape)
        start += count
        if kind == "DEAD":
            qe[idx] = 0.0
        elif kind == "HOT":
            dark[idx] = rng.uniform(1.0, 10.0, count)
        elif kind == "WARM":
            dark[idx] = rng.uniform(0.05, 0.5, count)
        else:
            qe[idx] = rng.uniform(0.3, 0.7, count)
        mask[idx] |= dqflags.PIXEL[kind] | dqflags.DO_NOT_USE

    qe[refpix] = 0.0
    dark[refpix] = 0.0
    mask[refpix] = dqflags.REFERENCE_PIXEL  # never DO_NOT_USE: refpix would ignore them

    full_well = (const["well_e"] * (1 + 0.04 * rng.standard_normal(shape)) / gain).astype(np.float32)
    a = rng.normal(*NONLIN_A, shape)
    b = rng.normal(*NONLIN_B, shape)
    # Deep wells are limited by the 16-bit ADC: keep bias + saturated signal below ADC_CEILING.
    m_sat = np.minimum(full_well / (1.0 + a + b), ADC_CEILING_DN - superbias)
    full_well = (m_sat * (1.0 + a + b)).astype(np.float32)
    coeffs = np.zeros((4, n, n), np.float32)
    coeffs[1] = 1.0
    coeffs[2] = a / m_sat
    coeffs[3] = b / m_sat**2
    return DetectorState(
        detector=ap.detector, channel=ap.channel, xstart=1, ystart=1,
        fastaxis=ap.fastaxis, slowaxis=ap.slowaxis, gain=gain, readnoise_cds=readnoise,
        superbias=superbias, dark_rate=dark.astype(np.float32), qe=qe.astype(np.float32),
        lin_coeffs=coeffs, full_well=full_well, mask=mask, ipc_nn=const["ipc"])


@dataclass(frozen=True)
class ExposureSetup:
    timing: ExposureTiming
    zeroframe: bool = False
    ipc: bool = False
    persistence: bool = False
    cosmic_rays: bool = True
    cr_rate_cm2_s: float = CR_RATE_CM2_S
    start_time_s: float = 0.0  # exposure start (seconds on any fixed scale; persistence decay)
    noise: bool = True  # False: no Poisson, read, 1/f noise nor output offsets (tests)


CR_DTYPE = np.dtype([("event", "i4"), ("int", "i2"), ("group", "i2"), ("frame", "i2"),
                     ("y", "i2"), ("x", "i2"), ("deposit_dn", "f4")])


def _one_over_f(rng, nseries: int, n: int, sigma: float) -> np.ndarray:
    """``nseries`` realisations of 1/f noise of length ``n`` with rms ``sigma``."""
    m = 2 * n
    f = np.fft.rfftfreq(m)
    f[0] = f[1]
    w = 1.0 / f
    norm = np.sqrt((w[0] + 2 * w[1:-1].sum() + w[-1]) / m)
    spec = np.fft.rfft(rng.standard_normal((nseries, m)), axis=1) / np.sqrt(f)
    return (np.fft.irfft(spec, m, axis=1)[:, :n] * (sigma / norm)).astype(np.float32)


def _cosmic_rays(rng, setup: ExposureSetup, state: DetectorState, nint: int):
    """CR hits of one integration: flat pixel index, arrival frame, electrons (and spill)."""
    t = setup.timing
    ny, nx = state.shape
    area = ny * nx * PIXEL_PITCH_CM**2
    duration = t.nframes_total * t.tframe
    nev = rng.poisson(setup.cr_rate_cm2_s * area * duration)
    y = rng.integers(0, ny, nev)
    x = rng.integers(0, nx, nev)
    frame = np.minimum((rng.random(nev) * t.nframes_total).astype(int), t.nframes_total - 1)
    dep = rng.lognormal(np.log(CR_MEDIAN_E), CR_SIGMA_LN, nev)
    ev = np.arange(nev)
    ys, xs, deps, evs, frames = [y], [x], [dep], [ev], [frame]
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        frac = rng.uniform(*CR_SPILL, nev)
        ys.append(y + dy)
        xs.append(x + dx)
        deps.append(dep * frac)
        evs.append(ev)
        frames.append(frame)
    y, x = np.concatenate(ys), np.concatenate(xs)
    dep, ev, frame = np.concatenate(deps), np.concatenate(evs), np.concatenate(frames)
    inside = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
    y, x, dep, ev, frame = y[inside], x[inside], dep[inside], ev[inside], frame[inside]
    live = ~state.reference_pixels[y, x]
    return y[live], x[live], dep[live], ev[live], frame[live]


def _column_offsets(rng, nx, det_cols, noutputs, ngroups):
    """Per-group offsets of every column: one value per (output, column parity)."""
    amp = det_cols // 512 if noutputs == 4 else np.zeros(nx, int)
    key = amp * 2 + (det_cols % 2)
    base = rng.normal(0.0, OFFSET_INT_DN, 8)
    drift = rng.normal(0.0, OFFSET_GROUP_DN, (ngroups, 8))
    return (base[None, :] + drift)[:, key].astype(np.float32)  # (ngroups, nx)


def _ipc(img, nn):
    """3×3 IPC: each pixel keeps 1−4·nn and gives nn to each edge neighbour."""
    out = img * (1 - 4 * nn)
    out[1:, :] += nn * img[:-1, :]
    out[:-1, :] += nn * img[1:, :]
    out[:, 1:] += nn * img[:, :-1]
    out[:, :-1] += nn * img[:, 1:]
    return out


def simulate_ramps(rate_dn_s, setup: ExposureSetup, detector_state: DetectorState, rng):
    """Raw ramps of one exposure (see the module docstring for the contract)."""
    t = setup.timing
    win = t.window
    state = detector_state
    if state.shape != win.shape or (state.xstart, state.ystart) != (win.xstart, win.ystart):
        state = detector_state.cut(win)
    rate = np.asarray(rate_dn_s, np.float32)
    if rate.shape != win.shape:
        raise WebbcalError("rate_dn_s", f"rate image shape {rate.shape} differs from the "
                           f"{win.name} window {win.shape}")
    ny, nx = win.shape
    p = t.pattern
    reads = t.read_frame_indices()  # (ngroups, nframes)
    true_rate = rate * state.qe
    pers = np.zeros_like(true_rate)
    if setup.persistence and state.persistence_e_s is not None:
        mid = setup.start_time_s + 0.5 * t.nints * t.integration_duration
        pers = (state.persistence_e_s * np.exp(-(mid - state.persistence_epoch) / PERSISTENCE_TAU_S)
                / state.gain).astype(np.float32)
    e_rate = ((true_rate + state.dark_rate + pers) * state.gain).astype(np.float64)
    e_rate = np.clip(e_rate, 0.0, None)
    det_cols = detector_columns(nx, win.xstart, state.fastaxis)
    rn_frame = state.readnoise_cds / np.sqrt(2.0)
    coeffs_flat = state.lin_coeffs.reshape(4, -1)
    well_flat = state.full_well.ravel()
    frame_of_read = reads.ravel()
    group_of_read = np.repeat(np.arange(t.ngroups), p.nframes)

    sci = np.empty((t.nints, t.ngroups, ny, nx), np.uint16)
    zero = np.empty((t.nints, ny, nx), np.uint16) if setup.zeroframe else None
    cr_rows, sat_group = [], np.full((t.nints, ny, nx), -1, np.int16)
    overfill = np.zeros((ny, nx), np.float32)
    for i in range(t.nints):
        if setup.cosmic_rays:
            cy, cx, cdep, cev, cframe = _cosmic_rays(rng, setup, state, i)
        else:
            cy = cx = cev = cframe = np.zeros(0, int)
            cdep = np.zeros(0)
        # A hit during frame k shows up in the first read frame >= k.
        cread = np.searchsorted(frame_of_read, cframe, side="left")
        keep = cread < frame_of_read.size
        cy, cx, cdep, cev, cframe, cread = (a[keep] for a in (cy, cx, cdep, cev, cframe, cread))
        if cy.size:
            rec = np.empty(cy.size, CR_DTYPE)
            rec["event"], rec["int"], rec["group"] = cev, i, group_of_read[cread]
            rec["frame"], rec["y"], rec["x"] = cframe, cy, cx
            rec["deposit_dn"] = cdep / state.gain[cy, cx]
            cr_rows.append(rec)
        order = np.argsort(cread, kind="stable")
        cy, cx, cdep, cread = cy[order], cx[order], cdep[order], cread[order]
        bounds = np.searchsorted(cread, np.arange(frame_of_read.size + 1))

        if setup.noise:
            offsets = _column_offsets(rng, nx, det_cols, win.noutputs, t.ngroups)
            rows = _one_over_f(rng, t.ngroups, ny, ROW_NOISE_DN / np.sqrt(p.nframes))
        else:
            offsets = np.zeros((t.ngroups, nx), np.float32)
            rows = np.zeros((t.ngroups, ny), np.float32)
        zero_rows = rows[0]
        if setup.zeroframe and setup.noise:
            # Frame 0 is downlinked on its own: group 0's row noise is the mean of its frames'.
            frame_rows = _one_over_f(rng, p.nframes, ny, ROW_NOISE_DN)
            zero_rows, rows[0] = frame_rows[0], frame_rows.mean(axis=0)
        charge = np.zeros((ny, nx), np.float64)
        prev = -1
        for g in range(t.ngroups):
            acc = np.zeros((ny, nx), np.float32)
            frame_signals = []
            for m in range(p.nframes):
                r = g * p.nframes + m
                k = frame_of_read[r]
                lam = e_rate * ((k - prev) * t.tframe)
                charge += rng.poisson(lam) if setup.noise else lam
                prev = k
                s0, s1 = bounds[r], bounds[r + 1]
                if s1 > s0:
                    np.add.at(charge, (cy[s0:s1], cx[s0:s1]), cdep[s0:s1])
                linear = (charge / state.gain).astype(np.float32)
                measured = _nonlinear_response(linear, coeffs_flat, well_flat, sat_group[i], g)
                acc += measured
                if setup.zeroframe and g == 0:
                    frame_signals.append(measured)
            signal = acc / p.nframes
            if setup.ipc:
                signal = _ipc(signal, state.ipc_nn)
            base = state.superbias + offsets[g][None, :] + rows[g][:, None]
            if setup.zeroframe and g == 0:
                # Frame 0 on its own: frame-level read noise; group 0 averages its frames.
                frame_noise = [rng.standard_normal((ny, nx), dtype=np.float32) * rn_frame
                               if setup.noise else np.zeros((ny, nx), np.float32)
                               for _ in range(p.nframes)]
                zsig = frame_signals[0] if not setup.ipc else _ipc(frame_signals[0], state.ipc_nn)
                zbase = state.superbias + offsets[0][None, :] + zero_rows[:, None]
                zero[i] = _digitise(zbase + zsig + frame_noise[0])
                noise = sum(frame_noise) / p.nframes
            elif setup.noise:
                noise = rng.standard_normal((ny, nx), dtype=np.float32) * (rn_frame / np.sqrt(p.nframes))
            else:
                noise = 0.0
            sci[i, g] = _digitise(base + signal + noise)
        overfill = np.maximum(overfill, (charge / state.gain / state.full_well).astype(np.float32))

    cosmic = np.concatenate(cr_rows) if cr_rows else np.zeros(0, CR_DTYPE)
    persistence = None
    if setup.persistence:
        persistence = np.where(overfill >= 1.0, PERSISTENCE_AMPLITUDE_E_S * np.minimum(overfill, 10.0), 0.0)
    truth = {"rate": true_rate, "cosmic_rays": cosmic, "saturation_group": sat_group,
             "persistence_e_s": persistence, "window": win,
             "end_time_s": setup.start_time_s + t.nints * t.integration_duration}
    return sci, zero, truth


def _nonlinear_response(linear, coeffs_flat, well_flat, sat_group, group):
    """Measured signal of one frame: full-well cap, then the inverse LINEARITY polynomial.

    Below ``EXACT_BELOW_DN`` the second-order reversion is exact to < 1e-6 (the neglected
    terms are ~5·(c2·L)³ and 5·c2·c3·L³); brighter pixels (a small subset in practice) get the quartic
    reversion + Newton of ``linear_to_measured`` and the saturation bookkeeping.
    """
    flat = linear.ravel()
    x = coeffs_flat[2] * flat
    y = coeffs_flat[3] * flat * flat
    out = flat * (1.0 - x * (1.0 - 2.0 * x) - y)
    idx = np.flatnonzero(flat > EXACT_BELOW_DN)
    if idx.size:
        lin = flat[idx]
        well = well_flat[idx]
        sat = lin >= well
        if sat.any():
            sg = sat_group.reshape(-1)
            hit = idx[sat]
            sg[hit[sg[hit] < 0]] = group
            lin = np.minimum(lin, well)
        out[idx] = linear_to_measured(lin, coeffs_flat[:, idx])
    return out.reshape(linear.shape)


def _digitise(values):
    """16-bit ADC: round to the nearest DN and clip to 0..65535 (in place on a temporary)."""
    values = np.asarray(values, np.float32)
    np.rint(values, out=values)
    np.minimum(values, 65535.0, out=values)
    np.maximum(values, 0.0, out=values)
    return values.astype(np.uint16)


def update_persistence(state: DetectorState, truth: dict) -> None:
    """Carry the persistence left by one exposure into the (full-frame) detector state."""
    new = truth.get("persistence_e_s")
    if new is None:
        return
    if state.persistence_e_s is None:
        state.persistence_e_s = np.zeros(state.shape, np.float32)
    else:
        state.persistence_e_s *= np.exp(-(truth["end_time_s"] - state.persistence_epoch) / PERSISTENCE_TAU_S)
    block = state.persistence_e_s[truth["window"].slices]
    np.maximum(block, new, out=block)
    state.persistence_epoch = truth["end_time_s"]
