"""Benchmark Image3: webbcal against the official jwst 3.0.0 Image3Pipeline on the same cal files.

An association of N full-frame exposures (the simulator's ``benchmark`` preset: NRCA1
F150W, 2 primary × 4 sub-pixel dithers, pointing errors, sky offsets) is made into cal
files once by webbcal Detector1 + Image2, then given to both pipelines, each in its own
process pinned to one core with one thread per numerical library. Printed per size:
per-step seconds, whole-process wall time, peak resident memory and webbcal/official.

    python benchmarks/image3.py                      # 8 and 16 exposures
    python benchmarks/image3.py --sizes 8            # one size
    python benchmarks/image3.py --full               # 8, 16 and 48
    python benchmarks/image3.py --workdir /tmp/b3 --prepare-only   # simulate + cal files only
    python benchmarks/image3.py --no-official        # webbcal only (e.g. its memory at 48)
    python benchmarks/image3.py --set resample.pixmap_stepsize=10 --set resample.pixmap_order=3

The simulated data and cal files live in ``WORKDIR/data`` and are reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._measure import (  # noqa: E402
    Measurement, format_table, measure_process, publish_report, ratio, single_thread_env)
from tests.oracle.jwst_offline import CHILD_PRELUDE, child_environment, read_report  # noqa: E402

STEPS = ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog")
WEBBCAL_STEP_LINE = re.compile(r"webbcal\.image3 INFO: (\w+)\s+(COMPLETE|FAILED|SKIPPED)\s+([\d.]+) s")
WEBBCAL_TOTAL_LINE = re.compile(r"webbcal\.image3 INFO: image3 \S+ done in ([\d.]+) s")

_OFFICIAL_CHILD = CHILD_PRELUDE + textwrap.dedent('''
    t0 = time.perf_counter()
    from jwst.pipeline import Image3Pipeline
    t1 = time.perf_counter()
    Image3Pipeline.call(request["input"], steps=request["steps"], output_dir=request["output_dir"],
                        save_results=True)
    t2 = time.perf_counter()
    json.dump({"outputs": {}, "step_seconds": seconds, "import_seconds": t1 - t0,
               "call_seconds": t2 - t1}, open(request["report"], "w"))
''')


def prepare(workdir: Path, count: int, seed: int) -> tuple[list[Path], Path, Path]:
    """Cal files of the first ``count`` exposures (simulated and calibrated once, then reused),
    the refs directory and the simulator's image3 association."""
    from webbcal.pipeline.detector1 import run_detector1
    from webbcal.pipeline.image2 import run_image2
    from webbcal.simulate.program import settings_for, simulate_program

    data = workdir / "data"
    settings_file = data / "truth" / "settings.json"
    have = json.loads(settings_file.read_text())["ndither"] if settings_file.exists() else 0
    if have < count:
        if data.exists():
            shutil.rmtree(data)
        print(f"simulating {count} FULL exposures into {data} ...", flush=True)
        simulate_program(data, settings_for("benchmark", ndither=count), seed=seed)
    names = [p["exposure"] for p in json.loads((data / "truth" / "pointing.json").read_text())][:count]
    cal_dir = data / "cal"
    cal_dir.mkdir(exist_ok=True)
    cals = []
    for k, name in enumerate(names, 1):
        cal = cal_dir / f"{name}_cal.fits"
        if not cal.exists():
            print(f"  {k}/{count} {name}: detector1 + image2 ...", flush=True)
            rate = data / "rate" / f"{name}_rate.fits"
            rate.parent.mkdir(exist_ok=True)
            if not rate.exists():
                run_detector1(data / "uncal" / f"{name}_uncal.fits", rate_path=rate, refs_dir=data / "refs")
            run_image2(rate, cal_path=cal, refs_dir=data / "refs", save_i2d=False)
        cals.append(cal)
    asn = next((data / "asn").glob("*image3*_asn.json"))
    return cals, data / "refs", asn


def association(template: Path, cals: list[Path], folder: Path) -> Path:
    """The simulator's image3 association cut to ``cals``, in ``folder`` with links to them."""
    folder.mkdir(parents=True, exist_ok=True)
    asn = json.loads(template.read_text())
    for cal in cals:
        link = folder / cal.name
        if not link.exists():
            link.symlink_to(cal.resolve())
    asn["products"][0]["members"] = [{"expname": c.name, "exptype": "science"} for c in cals]
    path = folder / template.name
    path.write_text(json.dumps(asn, indent=1))
    return path


def catalog_references(refs_dir: Path, cal: Path) -> dict:
    from astropy.io import fits

    from webbcal.refs import RefCache

    cache, header = RefCache(refs_dir), fits.getheader(cal)
    return {r: cache.select(r, header) for r in ("apcorr", "abvegaoffset")}


def run_webbcal(asn: Path, refs_dir: Path, outdir: Path, assignments=()) -> Measurement:
    outdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c",
            "import logging, sys; logging.basicConfig(level=logging.INFO, "
            "format='%(name)s %(levelname)s: %(message)s'); "
            "from webbcal.commands.image3 import image3; image3.main(sys.argv[1:], standalone_mode=True)",
            str(asn), "-o", str(outdir), "--refs", str(refs_dir)]
    for assignment in assignments:
        argv += ["--set", assignment]
    result = measure_process(argv, single_thread_env(), outdir / "webbcal.log")
    _check(result, "webbcal")
    log = result.log_path.read_text(errors="replace")
    result.step_seconds = {m.group(1): float(m.group(3)) for m in WEBBCAL_STEP_LINE.finditer(log)}
    total = WEBBCAL_TOTAL_LINE.search(log)
    result.extra = {"pipeline_s": float(total.group(1)) if total else None}
    return result


def run_official(asn: Path, refs: dict, outdir: Path) -> Measurement:
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="jwst_image3_", dir=outdir))
    (scratch / "child.py").write_text(_OFFICIAL_CHILD)
    steps = {"source_catalog": {f"override_{r}": str(p) for r, p in refs.items()}}
    request = {"input": str(asn.resolve()), "output_dir": str(outdir), "steps": steps,
               "report": str(scratch / "report.json")}
    (scratch / "request.json").write_text(json.dumps(request, indent=1))
    argv = [sys.executable, str(scratch / "child.py"), str(scratch / "request.json")]
    result = measure_process(argv, child_environment(scratch), scratch / "jwst.log")
    _check(result, "official jwst")
    report = read_report(scratch / "report.json", scratch / "jwst.log")
    result.step_seconds = {k: v for k, v in report.step_seconds.items() if k in STEPS}
    result.extra = {"pipeline_s": report.call_seconds, "import_s": report.import_seconds}
    return result


def _check(result: Measurement, who: str) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{who} failed (exit {result.returncode}); log {result.log_path}:\n" + result.log_tail())


def timing_rows(ours: Measurement, theirs: Measurement | None) -> list[list]:
    def get(m, key):
        return None if m is None else m.step_seconds.get(key)

    rows = [[step, get(ours, step), get(theirs, step), ratio(get(ours, step), get(theirs, step))]
            for step in STEPS]
    for label, attr in (("pipeline call", "pipeline_s"),):
        a, b = ours.extra.get(attr), None if theirs is None else theirs.extra.get(attr)
        rows.append([label, a, b, ratio(a, b)])
    b_wall = None if theirs is None else theirs.wall_s
    b_rss = None if theirs is None else theirs.peak_rss_mb
    rows.append(["whole process (wall)", ours.wall_s, b_wall, ratio(ours.wall_s, b_wall)])
    rows.append(["peak RSS [MB]", ours.peak_rss_mb, b_rss, ratio(ours.peak_rss_mb, b_rss)])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[8, 16],
                        help="comma-separated association sizes [8,16]")
    parser.add_argument("--full", action="store_true", help="sizes 8, 16 and 48")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prepare-only", action="store_true", help="make the cal files and stop")
    parser.add_argument("--no-official", action="store_true", help="run webbcal only")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="STEP.PARAM=VALUE",
                        help="a webbcal parameter, e.g. resample.pixmap_stepsize=10 (repeatable)")
    args = parser.parse_args(argv)
    sizes = [8, 16, 48] if args.full else sorted(args.sizes)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="webbcal_bench_i3_"))
    workdir.mkdir(parents=True, exist_ok=True)
    cals, refs_dir, template = prepare(workdir, max(sizes), args.seed)
    if args.prepare_only:
        print(f"cal files ready in {cals[0].parent}")
        return 0
    refs = catalog_references(refs_dir, cals[0])
    load_before = os.getloadavg()[0]
    report = []
    for n in sizes:
        asn = association(template, cals[:n], workdir / "sets" / f"n{n:02d}")
        rundir = workdir / "runs" / f"n{n:02d}"
        if rundir.exists():
            shutil.rmtree(rundir)
        print(f"{n} exposures: webbcal ...", flush=True)
        ours = run_webbcal(asn, refs_dir, rundir / "webbcal", args.assignments)
        theirs = None
        if not args.no_official:
            print(f"{n} exposures: official jwst ...", flush=True)
            theirs = run_official(asn, refs, rundir / "official")
        print(f"  webbcal {ours.wall_s:.1f} s {ours.peak_rss_mb:.0f} MB"
              + ("" if theirs is None else f", official {theirs.wall_s:.1f} s {theirs.peak_rss_mb:.0f} MB"),
              flush=True)
        settings = f" (webbcal --set {' '.join(args.assignments)})" if args.assignments else ""
        report.append(format_table(["step [s]", "webbcal", "official", "webbcal/official"],
                                   timing_rows(ours, theirs),
                                   f"Image3 on {n} FULL NRCA1 F150W exposures, one core{settings}"))
    report.append(f"Machine: {os.cpu_count()} CPUs, 1-min load {load_before:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after.")
    publish_report(report, workdir, "image3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
