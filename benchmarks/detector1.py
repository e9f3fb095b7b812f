"""Benchmark Detector1: webbcal against the official jwst 3.0.0 pipeline on the same exposure.

Both pipelines read the SAME uncal file with the SAME reference files (chosen once from the
data's reference cache and passed explicitly to both), each in its own process pinned to
one core with one thread per numerical library. Printed: whole-process wall time, peak
resident memory, per-step seconds (webbcal's from its INFO log, the official's from
stpipe's "Step X running / done" lines), the ratios webbcal/official and, when the data
directory has the simulator's truth, the accuracy of both rates.

    python benchmarks/detector1.py                      # simulate FULL, 10 BRIGHT2 groups
    python benchmarks/detector1.py --subarray           # the one-output subarray case
    python benchmarks/detector1.py --data DIR --repeat 3

``--data DIR`` is a simulator output (``DIR/uncal/*_uncal.fits``, ``DIR/refs/`` with
manifest.json, optional ``DIR/truth/``). Without it the exposure is simulated (once) into
``--workdir``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._measure import (  # noqa: E402
    publish_report,
    GNU_TIME, Measurement, core_pinning, format_table, measure_process, median_measurement,
    ratio, robust_sigma, single_thread_env)
from tests.oracle.jwst_offline import (  # noqa: E402
    prepare_official_detector1, read_report, webbcal_references)

STEP_ORDER = ("group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
              "dark_current", "charge_migration", "jump", "persistence", "ramp_fit", "gain_scale")
DEFAULT_SUBARRAY = "SUB640"  # the simulator's largest one-output imaging subarray
DO_NOT_USE, JUMP_DET, REFERENCE_PIXEL = 1, 4, 1 << 31
# webbcal.detector1 logs "<step> <STATUS> <seconds> s" per step and "detector1 X done in T s".
WEBBCAL_STEP_LINE = re.compile(
    r"webbcal\.detector1 INFO: (\w+)\s+(COMPLETE|FAILED|SKIPPED)\s+([\d.]+) s")
MEMORY_SOURCE = "/usr/bin/time -v" if os.access(GNU_TIME, os.X_OK) else "os.wait4"
PINNING = " ".join(core_pinning(0)) or "no taskset (not pinned)"
WEBBCAL_TOTAL_LINE = re.compile(r"webbcal\.detector1 INFO: detector1 \S+ done in ([\d.]+) s")


# --------------------------------------------------------------------------- data

def simulate_exposure(datadir: Path, subarray: str, ngroups: int, seed: int) -> Path:
    """One benchmark-preset exposure (1 dither) into ``datadir``; reused when present."""
    if list((datadir / "uncal").glob("*_uncal.fits")):
        print(f"reusing simulated data in {datadir}")
        return datadir
    from webbcal.simulate.program import settings_for, simulate_program

    print(f"simulating one {subarray} {ngroups}-group BRIGHT2 exposure into {datadir} ...")
    summary = simulate_program(datadir, settings_for("benchmark", subarray=subarray,
                                                     ngroups=ngroups, ndither=1), seed=seed)
    print(f"  simulated in {summary['seconds']:.0f} s")
    return datadir


def pick_uncal(datadir: Path, subarray: str | None) -> Path:
    """The first uncal in ``datadir/uncal`` of the wanted subarray (FULL without one)."""
    wanted = (subarray or "FULL").upper()
    found = sorted((datadir / "uncal").glob("*_uncal.fits"))
    for path in found:
        if str(fits.getval(path, "SUBARRAY")).upper() == wanted:
            return path
    names = ", ".join(sorted({str(fits.getval(p, "SUBARRAY")) for p in found})) or "none"
    raise SystemExit(f"no {wanted} uncal in {datadir / 'uncal'} (subarrays there: {names})")


# --------------------------------------------------------------------------- the two runs

def extension_switches() -> list[str]:
    """``--set step.param=false`` for every webbcal extension (official behaviour)."""
    from webbcal.steps import registry

    return [f"--set={name}.{p.name}=false" for name in registry.STAGES["detector1"]
            for p in registry.spec(name).params
            if p.type is bool and p.help.startswith("webbcal extension")]


def run_webbcal(uncal: Path, refs: dict, refs_dir: Path, outdir: Path,
                extra_args: list[str] = ()) -> Measurement:
    outdir.mkdir(parents=True, exist_ok=True)
    stem = uncal.name.removesuffix("_uncal.fits")
    argv = [sys.executable, "-c", "import sys; from webbcal.cli import main; sys.exit(main())",
            "detector1", str(uncal), "-o", str(outdir / f"{stem}_rate.fits"),
            "--rateints", str(outdir / f"{stem}_rateints.fits"), "--refs", str(refs_dir)]
    for reftype, path in refs.items():
        argv += [f"--override-{reftype}", str(path)]
    argv += list(extra_args)
    result = measure_process(argv, single_thread_env(), outdir / "webbcal.log")
    _check(result, "webbcal")
    log = result.log_path.read_text(errors="replace")
    result.step_seconds = {m.group(1): float(m.group(3)) for m in WEBBCAL_STEP_LINE.finditer(log)}
    total = WEBBCAL_TOTAL_LINE.search(log)
    result.extra = {"pipeline_s": float(total.group(1)) if total else None,
                    "rate": outdir / f"{stem}_rate.fits"}
    return result


def run_official(uncal: Path, refs: dict, outdir: Path) -> Measurement:
    job = prepare_official_detector1(uncal, refs, outdir)
    result = measure_process(job.argv, job.env, job.log_path)
    _check(result, "official jwst")
    report = read_report(job.report_path, job.log_path)
    result.step_seconds = {k: v for k, v in report.step_seconds.items() if k in STEP_ORDER}
    result.extra = {"pipeline_s": report.call_seconds, "rate": report.outputs["rate"],
                    "import_s": report.import_seconds}
    return result


def _check(result: Measurement, who: str) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{who} failed (exit {result.returncode}); log {result.log_path}:\n"
                         + result.log_tail())


# --------------------------------------------------------------------------- accuracy

def truth_for(datadir: Path, uncal: Path):
    name = uncal.name.removesuffix("_uncal.fits")
    rate_path = datadir / "truth" / f"{name}_rate.fits"
    if not rate_path.exists():
        return None
    with fits.open(rate_path) as hdul:
        truth = {"rate": hdul["RATE"].data.astype(np.float64),
                 "satgroup": hdul["SATGROUP"].data if "SATGROUP" in hdul else None}
    crs = datadir / "truth" / f"{name}_crs.ecsv"
    hit = np.zeros(truth["rate"].shape, bool)
    if crs.exists():
        from astropy.table import Table

        table = Table.read(crs, format="ascii.ecsv")
        if len(table):
            hit[np.asarray(table["y"]), np.asarray(table["x"])] = True
    truth["near_cr"] = dilate3(hit)  # neighbours are flagged on purpose (flag_4_neighbors)
    return truth


def dilate3(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


def accuracy(rate_paths: dict[str, Path], truth) -> list[list]:
    """Rows of the accuracy table, one statistic per row, one column per pipeline."""
    loaded = {}
    for who, path in rate_paths.items():
        with fits.open(path) as hdul:
            loaded[who] = (hdul["SCI"].data.astype(np.float64), hdul["ERR"].data.astype(np.float64),
                           hdul["DQ"].data.astype(np.uint32))
    science = np.ones(truth["rate"].shape, bool)
    for _, _, dq in loaded.values():
        science &= (dq & REFERENCE_PIXEL) == 0
    # compare on the pixels that both pipelines measured and no cosmic ray touched
    common = science & ~truth["near_cr"]
    for rate, err, dq in loaded.values():
        common &= np.isfinite(rate) & (err > 0) & ((dq & DO_NOT_USE) == 0)
    stats: dict[str, dict[str, float]] = {}
    for who, (rate, err, dq) in loaded.items():
        diff = (rate - truth["rate"])[common]
        clean = science & ~truth["near_cr"]
        late_sat = None
        if truth["satgroup"] is not None:
            sat = np.asarray(truth["satgroup"])
            sat = sat.min(axis=0) if sat.ndim == 3 else sat
            late = science & (sat >= 2)
            late_sat = 100 * float(np.mean(np.isnan(rate[late]))) if late.any() else None
        stats[who] = {
            "median(rate - truth) [DN/s]": float(np.median(diff)),
            "robust sigma of (rate - truth)/ERR": robust_sigma(diff / err[common]),
            "within 3 sigma [%]": 100 * float(np.mean(np.abs(diff / err[common]) < 3)),
            "false JUMP_DET pixels [%]": 100 * float(np.mean((dq[clean] & JUMP_DET) > 0)),
            "NaN pixels [%]": 100 * float(np.mean(np.isnan(rate[science]))),
            "NaN among pixels saturating in group >= 2 [%]": late_sat,
        }
    names = list(loaded)
    rows = [[stat] + [stats[w][stat] for w in names] for stat in stats[names[0]]]
    rows.append(["pixels compared", int(common.sum()), int(common.sum())])
    return rows


# --------------------------------------------------------------------------- report

def timing_rows(ours: Measurement, theirs: Measurement) -> list[list]:
    rows = []
    for step in STEP_ORDER:
        a, b = ours.step_seconds.get(step), theirs.step_seconds.get(step)
        if a is None and b is None:
            continue
        rows.append([step, a, b, ratio(a, b)])
    for label, a, b in (
            ("pipeline call [s]", ours.extra.get("pipeline_s"), theirs.extra.get("pipeline_s")),
            ("whole process [s]", ours.wall_s, theirs.wall_s),
            ("peak RSS [MB]", ours.peak_rss_mb, theirs.peak_rss_mb)):
        rows.append([label, a, b, ratio(a, b)])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="simulator output directory to reuse")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to simulate and write outputs [default: a temp dir]")
    parser.add_argument("--subarray", nargs="?", const=DEFAULT_SUBARRAY, default=None,
                        help=f"one-output subarray case (default name {DEFAULT_SUBARRAY})")
    parser.add_argument("--ngroups", type=int, default=10, help="groups of the simulated exposure")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; medians reported")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed")
    parser.add_argument("--official-mode", action="store_true",
                        help="switch off webbcal's extensions (official algorithms only)")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="webbcal_bench_d1_"))
    workdir.mkdir(parents=True, exist_ok=True)
    subarray = (args.subarray or "FULL").upper()
    simulated = workdir / f"data_{subarray.lower()}_{args.ngroups}g_seed{args.seed}"
    datadir = args.data or simulate_exposure(simulated, subarray, args.ngroups, args.seed)
    uncal = pick_uncal(datadir, subarray)
    refs = webbcal_references(datadir / "refs", uncal)
    header = fits.getheader(uncal)
    shape = fits.getval(uncal, "NAXIS1", ext=1), fits.getval(uncal, "NAXIS2", ext=1)
    print(f"exposure {uncal.name}: {header.get('SUBARRAY')} {shape[0]}x{shape[1]}, "
          f"{header.get('READPATT')} NGROUPS={header.get('NGROUPS')} NINTS={header.get('NINTS')}")
    for reftype, path in refs.items():
        print(f"  {reftype:10s} {path.name}")

    switches = extension_switches() if args.official_mode else []
    if switches:
        print("webbcal in official mode: " + " ".join(switches))
    load_before = os.getloadavg()[0]
    ours_runs, theirs_runs = [], []
    for k in range(args.repeat):
        rundir = workdir / "runs" / f"{k:02d}"
        if rundir.exists():
            shutil.rmtree(rundir)
        print(f"run {k + 1}/{args.repeat}: webbcal ...", flush=True)
        ours_runs.append(run_webbcal(uncal, refs, datadir / "refs", rundir / "webbcal",
                                     switches))
        print(f"run {k + 1}/{args.repeat}: official jwst ...", flush=True)
        theirs_runs.append(run_official(uncal, refs, rundir / "official"))
        print(f"  webbcal {ours_runs[-1].wall_s:.1f} s, official {theirs_runs[-1].wall_s:.1f} s")
    ours, theirs = median_measurement(ours_runs), median_measurement(theirs_runs)

    title = (f"Detector1, {header.get('SUBARRAY')} {shape[0]}x{shape[1]}, "
             f"{header.get('READPATT')} {header.get('NGROUPS')} groups, one core"
             + (f", median of {args.repeat}" if args.repeat > 1 else "")
             + (", webbcal extensions off" if switches else ""))
    report = [format_table(["step [s]", "webbcal", "official", "webbcal/official"],
                           timing_rows(ours, theirs), title),
              f"Machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before and "
              f"{os.getloadavg()[0]:.1f} after the runs (other work on the machine slows both). "
              f"Peak RSS from {MEMORY_SOURCE}; pinned with {PINNING}."]
    truth = truth_for(datadir, uncal)
    if truth is not None:
        report.append(format_table(
            ["accuracy vs truth", "webbcal", "official"],
            accuracy({"webbcal": ours_runs[-1].extra["rate"],
                      "official": theirs_runs[-1].extra["rate"]}, truth),
            "Accuracy against the simulator's truth"))
    else:
        report.append(f"(no truth in {datadir / 'truth'}: accuracy not computed)")
    publish_report(report, workdir, "detector1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
