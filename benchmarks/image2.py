"""Benchmark Image2: webbcal against the official jwst 3.0.0 pipeline on the same rate file.

Both read the SAME full-frame rate with the SAME reference files (distortion, filteroffset,
flat, photom, area, chosen once from the data's cache and passed explicitly to both), each
in its own process pinned to one core with one thread per numerical library. Printed:
whole-process wall time, peak resident memory, per-step seconds, the ratios
webbcal/official, and how far the two cal/i2d products are apart.

    python benchmarks/image2.py                      # simulate FULL (1 exposure) + Detector1
    python benchmarks/image2.py --data DIR           # DIR/uncal + DIR/refs, or a rate via --rate
    python benchmarks/image2.py --rate X_rate.fits --refs DIR --repeat 3
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._measure import (  # noqa: E402
    publish_report,
    Measurement, format_table, measure_process, median_measurement, ratio, single_thread_env)
from tests.oracle.jwst_offline import read_report  # noqa: E402
from tests.pipeline.test_image2_oracle import (  # noqa: E402
    prepare_official_image2, selected_references)

STEPS = ("assign_wcs", "flat_field", "photom", "resample")
WEBBCAL_STEP_LINE = re.compile(r"webbcal\.image2 INFO: (\w+)\s+(COMPLETE|FAILED|SKIPPED)\s+([\d.]+) s")
WEBBCAL_TOTAL_LINE = re.compile(r"webbcal\.image2 INFO: image2 \S+ done in ([\d.]+) s")


def make_rate(workdir: Path, seed: int) -> tuple[Path, Path]:
    """One simulated full-frame exposure through webbcal Detector1 (reused when present)."""
    data = workdir / "data_full"
    rates = sorted(data.glob("*_rate.fits"))
    if rates:
        print(f"reusing {rates[0]}")
        return rates[0], data / "refs"
    from webbcal.pipeline.detector1 import run_detector1
    from webbcal.simulate.program import settings_for, simulate_program

    print(f"simulating one FULL exposure into {data} ...", flush=True)
    summary = simulate_program(data, settings_for("benchmark", ndither=1), seed=seed)
    name = summary["exposures"][0]
    rate = data / f"{name}_rate.fits"
    print("running webbcal detector1 to make the rate ...", flush=True)
    run_detector1(data / "uncal" / f"{name}_uncal.fits", rate_path=rate, refs_dir=data / "refs")
    return rate, data / "refs"


def run_webbcal(rate: Path, refs: dict, refs_dir: Path, outdir: Path) -> Measurement:
    outdir.mkdir(parents=True, exist_ok=True)
    root = rate.name.removesuffix("_rate.fits")
    cal = outdir / f"{root}_cal.fits"
    argv = [sys.executable, "-c",
            "import logging, sys; logging.basicConfig(level=logging.INFO, "
            "format='%(name)s %(levelname)s: %(message)s'); "
            "from webbcal.commands.image2 import image2; image2.main(sys.argv[1:], standalone_mode=True)",
            str(rate), "-o", str(cal), "--i2d", str(outdir / f"{root}_i2d.fits"), "--refs", str(refs_dir)]
    for reftype, path in refs.items():
        argv += [f"--override-{reftype}", str(path)]
    result = measure_process(argv, single_thread_env(), outdir / "webbcal.log")
    _check(result, "webbcal")
    log = result.log_path.read_text(errors="replace")
    result.step_seconds = {m.group(1): float(m.group(3)) for m in WEBBCAL_STEP_LINE.finditer(log)}
    total = WEBBCAL_TOTAL_LINE.search(log)
    result.extra = {"pipeline_s": float(total.group(1)) if total else None, "cal": cal,
                    "i2d": outdir / f"{root}_i2d.fits"}
    return result


def run_official(rate: Path, refs: dict, outdir: Path) -> Measurement:
    job, expected = prepare_official_image2(rate, refs, outdir)
    result = measure_process(job.argv, job.env, job.log_path)
    _check(result, "official jwst")
    report = read_report(job.report_path, job.log_path)
    result.step_seconds = {k: v for k, v in report.step_seconds.items() if k in STEPS}
    result.extra = {"pipeline_s": report.call_seconds, "import_s": report.import_seconds, **expected}
    return result


def _check(result: Measurement, who: str) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{who} failed (exit {result.returncode}); log {result.log_path}:\n" + result.log_tail())


def agreement(ours: dict, theirs: dict) -> list[list]:
    """How far apart the two products are: cal arrays (ulp), DQ, WCS (mas), i2d."""
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = datamodels.open(str(ours["cal"])), datamodels.open(str(theirs["cal"]))
        rows = []
        for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
            x, y = getattr(a, name), getattr(b, name)
            both = np.isfinite(x) & np.isfinite(y)
            rel = np.abs(x[both] - y[both]) / np.maximum(np.abs(y[both]), np.finfo(np.float32).tiny)
            rows.append([f"cal {name.upper()} max |rel diff|", f"{rel.max():.2e}",
                         f"NaN masks equal: {np.array_equal(np.isnan(x), np.isnan(y))}"])
        rows.append(["cal DQ equal", str(np.array_equal(a.dq, b.dq)), ""])
        ny, nx = a.data.shape
        yy, xx = np.mgrid[-0.5:ny:32.0, -0.5:nx:32.0]
        wa, wb = np.array(a.meta.wcs(xx, yy)), np.array(b.meta.wcs(xx, yy))
        mas = np.hypot((wa[0] - wb[0]) * np.cos(np.deg2rad(wa[1])), wa[1] - wb[1]) * 3.6e6
        rows.append(["cal WCS max separation", f"{mas.max():.2e} mas", ""])
        ia, ib = datamodels.open(str(ours["i2d"])), datamodels.open(str(theirs["i2d"]))
        rows.append(["i2d shape", str(ia.data.shape), str(ib.data.shape)])
        if ia.data.shape == ib.data.shape:
            for name in ("data", "err", "var_rnoise", "var_poisson", "var_flat", "wht"):
                x, y = getattr(ia, name), getattr(ib, name)
                both = np.isfinite(x) & np.isfinite(y)
                diff = np.abs(x[both] - y[both]).max() / np.nanmedian(np.abs(y))
                rows.append([f"i2d {name.upper()} max |diff| / median", f"{diff:.2e}",
                             f"NaN masks equal: {np.array_equal(np.isnan(x), np.isnan(y))}"])
            rows.append(["i2d CON equal", str(np.array_equal(ia.con, ib.con)), ""])
    return rows


def timing_rows(ours: Measurement, theirs: Measurement) -> list[list]:
    rows = [[step, ours.step_seconds.get(step), theirs.step_seconds.get(step),
             ratio(ours.step_seconds.get(step), theirs.step_seconds.get(step))] for step in STEPS]
    rows.append(["pipeline call", ours.extra.get("pipeline_s"), theirs.extra.get("pipeline_s"),
                 ratio(ours.extra.get("pipeline_s"), theirs.extra.get("pipeline_s"))])
    rows.append(["whole process (wall)", ours.wall_s, theirs.wall_s, ratio(ours.wall_s, theirs.wall_s)])
    rows.append(["peak RSS [MB]", ours.peak_rss_mb, theirs.peak_rss_mb, ratio(ours.peak_rss_mb, theirs.peak_rss_mb)])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=Path, help="a rate file to use (with --refs)")
    parser.add_argument("--refs", type=Path, help="reference cache directory of --rate")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="webbcal_bench_i2_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.rate:
        rate, refs_dir = args.rate, args.refs or args.rate.parent / "refs"
    else:
        rate, refs_dir = make_rate(workdir, args.seed)
    refs = selected_references(refs_dir, rate)
    print(f"rate {rate.name}")
    for reftype, path in refs.items():
        print(f"  {reftype:12s} {Path(path).name}")
    load_before = os.getloadavg()[0]
    ours_runs, theirs_runs = [], []
    for k in range(args.repeat):
        rundir = workdir / "runs" / f"{k:02d}"
        if rundir.exists():
            shutil.rmtree(rundir)
        print(f"run {k + 1}/{args.repeat}: webbcal ...", flush=True)
        ours_runs.append(run_webbcal(rate, refs, refs_dir, rundir / "webbcal"))
        print(f"run {k + 1}/{args.repeat}: official jwst ...", flush=True)
        theirs_runs.append(run_official(rate, refs, rundir / "official"))
        print(f"  webbcal {ours_runs[-1].wall_s:.1f} s, official {theirs_runs[-1].wall_s:.1f} s")
    ours, theirs = median_measurement(ours_runs), median_measurement(theirs_runs)
    report = [format_table(["step [s]", "webbcal", "official", "webbcal/official"], timing_rows(ours, theirs),
                           f"Image2 on {rate.name}, one core" + (f", median of {args.repeat}" if args.repeat > 1 else "")),
              f"Machine: {os.cpu_count()} CPUs, 1-min load {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.",
              format_table(["agreement", "value", "note"], agreement(ours_runs[-1].extra, theirs_runs[-1].extra),
                           "webbcal vs official products")]
    publish_report(report, workdir, "image2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
