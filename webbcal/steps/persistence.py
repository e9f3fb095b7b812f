"""persistence: flag groups inside a persistence window (official jwst 3.0 ``persistence``).

Skipped by default. A pixel that saturates opens a window of ``persistence_time`` seconds
from the time of its first saturated group in an integration (optionally also a pixel
whose value exceeds ``dn_threshold``, if no window is open); every group read inside an
open window gets PERSISTENCE (and DO_NOT_USE with ``persistence_dnu``). Window end times
(Unix seconds) can be carried between exposures of the same detector in an ASDF file.
Group g of integration i is read at ``start_i + (g+1) * TGROUP``, with ``start_i`` from
INT_TIMES (``int_start_MJD_UTC``) or EXPSTART + i * EFFINTTM.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.persistence")

SPEC = StepSpec(
    name="persistence", stage="detector1", status_key="S_PERSIS", skip=True,
    params=(
        Param("save_persistence", str, None,
              "ASDF file to save the per-pixel persistence window end times", nullable=True),
        Param("persistence_time", int, None,
              "length of the persistence window in seconds (required when run)", nullable=True),
        Param("dn_threshold", float, None,
              "also open a window where the science value exceeds this (DN)", nullable=True),
        Param("persistence_array_file", str, None,
              "ASDF file with window end times from earlier exposures", nullable=True),
        Param("persistence_dnu", bool, False, "also set DO_NOT_USE with PERSISTENCE"),
    ),
    doc="Flag PERSISTENCE in groups read within persistence_time of a saturation.",
)


def mjd_to_unix(mjd: float) -> float:
    return (mjd - 40587.0) * 86400.0


def flag_persistence(data: np.ndarray, groupdq: np.ndarray, window_end: np.ndarray,
                     int_starts: np.ndarray, group_time: float, persistence_time: float, *,
                     dn_threshold: float | None = None, persistence_dnu: bool = False) -> None:
    """Flag groups in open windows; ``window_end`` (ny, nx, Unix s, 0 = none) is updated.

    ``int_starts`` are the integration start times (Unix s). Everything in place.
    """
    flag = dqflags.PERSISTENCE | (dqflags.DO_NOT_USE if persistence_dnu else 0)
    for i in range(data.shape[0]):
        # saturated groups seen so far; "== 1" (as the official counts) opens the window
        n_saturated = np.zeros(data.shape[2:], dtype=np.int32)
        now = float(int_starts[i])
        for g in range(data.shape[1]):
            now += group_time
            window_end[window_end < now] = 0.0
            new_end = now + persistence_time
            saturated = (groupdq[i, g] & dqflags.SATURATED) != 0
            n_saturated += saturated
            window_end[n_saturated == 1] = new_end
            if dn_threshold is not None:
                window_end[(data[i, g] > dn_threshold) & (window_end <= 0.0)] = new_end
            # a window that starts in the future (carried in from a later exposure) is invalid
            window_end[(window_end != 0.0) & (window_end - new_end > 0.0)] = 0.0
            np.bitwise_or(groupdq[i, g], flag, out=groupdq[i, g], where=window_end > 0.0)


def integration_starts(meta, int_times: np.ndarray | None, nints: int) -> np.ndarray:
    """Unix start time of every integration (INT_TIMES when it covers it, else EXPSTART+i*EFFINTTM)."""
    expstart = meta.get("EXPSTART")
    effinttm = meta.get("EFFINTTM")
    starts = np.empty(nints)
    for i in range(nints):
        if int_times is not None and len(int_times) > i:
            starts[i] = mjd_to_unix(float(int_times["int_start_MJD_UTC"][i]))
        else:
            if expstart is None or effinttm is None:
                raise ValueError("EXPSTART/EFFINTTM missing and INT_TIMES does not cover the exposure")
            starts[i] = mjd_to_unix(float(expstart)) + i * float(effinttm)
    return starts


def load_windows(path: str, detector: str, shape: tuple[int, int], persistence_time: int) -> np.ndarray:
    """Window end times for ``detector`` from an ASDF file written by :func:`save_windows`."""
    from webbcal.io.asdf_loader import load_asdf
    asdf = load_asdf()
    windows = np.zeros(shape, dtype=np.float64)
    if not Path(path).exists():
        log.info("persistence array file %s does not exist: starting empty", path)
        return windows
    try:
        with asdf.open(path) as af:
            entry = af.tree.get(detector)
            if entry is None:
                log.info("detector %s not in %s: starting empty", detector, path)
                return windows
            if entry["pers_time"] != persistence_time:
                log.info("%s was made with persistence_time %s: starting empty", path, entry["pers_time"])
                return windows
            windows[np.asarray(entry["rows"]), np.asarray(entry["cols"])] = np.asarray(entry["vals"])
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise WebbcalError(path, f"not a usable persistence array file: {exc}") from None
    return windows


def save_windows(path: str, detector: str, filename: str | None, windows: np.ndarray,
                 persistence_time: int) -> Path:
    """Add/replace ``detector``'s non-zero window end times in an ASDF file (atomic write)."""
    from webbcal.io.asdf_loader import load_asdf
    asdf = load_asdf()
    from webbcal.io.atomic import atomic_path
    target = Path(path)
    if target.suffix != ".asdf":
        target = target.with_suffix(".asdf")
    tree = {}
    if target.exists():
        with asdf.open(target, lazy_load=False, memmap=False) as af:
            tree = {k: v for k, v in af.tree.items() if not k.startswith("asdf_")}
    rows, cols = np.nonzero(windows)
    tree[detector] = {"filename": filename, "rows": rows, "cols": cols,
                      "vals": windows[rows, cols], "pers_time": persistence_time}
    with atomic_path(target) as tmp:
        asdf.AsdfFile(tree).write_to(tmp)
    return target


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    pers_time = params.get("persistence_time")
    if pers_time is None or pers_time <= 0:
        log.warning("persistence_time must be a positive number of seconds: persistence FAILED")
        return "FAILED"
    meta = ramp.meta
    nints, _, ny, nx = ramp.data.shape
    detector = str(meta.get("DETECTOR", ""))
    if params.get("persistence_array_file"):
        windows = load_windows(params["persistence_array_file"], detector, (ny, nx), pers_time)
    else:
        windows = np.zeros((ny, nx), dtype=np.float64)
    try:
        starts = integration_starts(meta, ramp.tables.get("INT_TIMES"), nints)
    except ValueError as exc:
        raise WebbcalError(meta.get("FILENAME"), str(exc)) from None
    if meta.get("TGROUP") is None:
        raise WebbcalError(meta.get("FILENAME"), "TGROUP missing: cannot time the groups")
    flag_persistence(ramp.data, ramp.groupdq, windows, starts, float(meta["TGROUP"]), pers_time,
                     dn_threshold=params.get("dn_threshold"),
                     persistence_dnu=bool(params.get("persistence_dnu", False)))
    if params.get("save_persistence"):
        save_windows(params["save_persistence"], detector, meta.get("FILENAME"), windows, pers_time)
    return "COMPLETE"
