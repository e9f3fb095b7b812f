"""Benchmark Spec2 for NIRCam WFSS: webbcal against the official jwst 3.0.0 Spec2Pipeline.

Both calibrate the SAME grism rate with the SAME 100-source catalog (the brightest rows of
the direct image's Image3 catalog) and the SAME reference files (chosen once from the
data's cache and passed explicitly to both), each in its own process pinned to one core
with one thread per numerical library. Printed: whole-process wall time, peak resident
memory, per-step seconds, the ratios webbcal/official, and how far the products are apart
(background scale, slits, extracted flux).

    python benchmarks/wfss.py                        # simulate a WFSS observation first
    python benchmarks/wfss.py --data DIR             # a directory made by an earlier run
    python benchmarks/wfss.py --sources 100 --repeat 3
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
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._measure import (  # noqa: E402
    Measurement, format_table, measure_process, median_measurement, publish_report, ratio,
    single_thread_env)
from tests.oracle.jwst_offline import CHILD_PRELUDE, child_environment, read_report  # noqa: E402

STEPS = ("assign_wcs", "bkg_subtract", "flat_field", "extract_2d", "srctype", "photom", "extract_1d")
WEBBCAL_STEP_LINE = re.compile(r"webbcal\.spec2 INFO: (\w+)\s+(COMPLETE|FAILED|SKIPPED)\s+([\d.]+) s")
WEBBCAL_TOTAL_LINE = re.compile(r"webbcal\.spec2 INFO: spec2 \S+ done in ([\d.]+) s")
# Reference types of the WFSS chain; every other type of every Spec2 step gets "N/A".
WFSS_REFTYPES = ("distortion", "filteroffset", "specwcs", "wavelengthrange", "bkg", "flat",
                 "photom", "area")

# The official side: Spec2Pipeline.call on the association, run from the association's
# directory (the official code reads the catalog by its bare name from there).
_CHILD = CHILD_PRELUDE + textwrap.dedent('''
    t0 = time.perf_counter()
    from jwst.pipeline import Spec2Pipeline
    t1 = time.perf_counter()
    # assign_wcs's SIP approximation for WFSS asks CRDS again through a fresh step
    # (util.get_wcs_reference_files), ignoring the overrides: answer with the same files.
    import jwst.assign_wcs.util as wcs_util
    from jwst.assign_wcs import AssignWcsStep
    wcs_util.get_wcs_reference_files = lambda model: {
        r: request["refs"].get(r) for r in AssignWcsStep.reference_file_types}
    steps = {}
    for name, cls in Spec2Pipeline.step_defs.items():
        if name not in request["wfss_steps"]:  # not run for NRC_WFSS: no reference prefetch
            steps[name] = {"skip": True}
            continue
        reftypes = getattr(cls, "reference_file_types", None) or []
        if isinstance(reftypes, property):  # computed per instance
            reftypes = cls().reference_file_types
        steps[name] = {f"override_{r}": request["refs"].get(r, "N/A") for r in reftypes}
    os.chdir(os.path.dirname(request["input"]))
    Spec2Pipeline.call(request["input"], steps=steps, output_dir=request["output_dir"],
                       save_results=True)
    t2 = time.perf_counter()
    json.dump({"outputs": {}, "step_seconds": seconds, "import_seconds": t1 - t0,
               "call_seconds": t2 - t1}, open(request["report"], "w"))
''')


# --------------------------------------------------------------------------- data

def make_data(workdir: Path) -> Path:
    """A simulated WFSS observation up to its spec2 inputs (reused when present)."""
    data = workdir / "data_wfss"
    if (data / "asn").is_dir() and list((data / "asn").glob("*_spec2_*_asn.json")):
        print(f"reusing {data}")
        return data
    from tests.pipeline.test_spec2_support import build

    print(f"simulating a WFSS observation into {data} (a few minutes) ...", flush=True)
    data.mkdir(parents=True, exist_ok=True)
    build(data)
    return data


def bench_inputs(data: Path, workdir: Path, n_sources: int) -> tuple[Path, Path, dict]:
    """A spec2 association of the grism rate with an ``n_sources``-row catalog, and refs."""
    from astropy.io import fits
    from astropy.table import QTable

    from webbcal.asn import read_association
    from webbcal.refs import RefCache

    (asn_path,) = sorted((data / "asn").glob("*_spec2_*_asn.json"))[:1]
    asn = json.loads(asn_path.read_text())
    members = {m["exptype"]: m["expname"] for m in asn["products"][0]["members"]}
    read_association(asn_path)  # the simulator's association is valid
    folder = workdir / f"inputs_{n_sources}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rate = data / "asn" / members["science"]
    (folder / rate.name).symlink_to(rate)
    catalog = QTable.read(data / "asn" / members["sourcecat"], format="ascii.ecsv")
    catalog = catalog[np.isfinite(np.asarray(catalog["isophotal_abmag"], float))]
    catalog.sort("isophotal_abmag")
    catalog = catalog[:n_sources]
    for name in catalog.colnames:  # the official reader compares magnitudes with plain floats
        if name.endswith(("mag", "mag_err")) and getattr(catalog[name], "unit", None) is not None:
            catalog[name] = np.asarray(catalog[name].value)
    catalog.write(folder / members["sourcecat"], format="ascii.ecsv")
    asn["products"][0]["members"] = [m for m in asn["products"][0]["members"]
                                     if m["exptype"] in ("science", "sourcecat")]
    bench_asn = folder / asn_path.name
    bench_asn.write_text(json.dumps(asn, indent=1))
    header = fits.getheader(rate)
    cache = RefCache(data / "refs")
    refs = {r: str(cache.select(r, header)) for r in WFSS_REFTYPES}
    refs["specwcs"] = str(specwcs_with_inverse(Path(refs["specwcs"]), folder, header["PUPIL"]))
    return bench_asn, data / "refs", refs


def specwcs_with_inverse(path: Path, folder: Path, pupil: str) -> Path:
    """A copy of a SPECWCS reference with the inverse along-dispersion models added.

    The official forward dispersion (extract_2d's wavelength map) needs ``invdispx``
    (GRISMR) / ``invdispy`` (GRISMC), one 1-input model t(d) per order as in the CRDS
    files: its 40-point fallback cannot broadcast over a cut-out. The simulator's files
    have none, so a field-averaged cubic t(d) is fitted here; both pipelines get this
    copy (and webbcal then uses the same inverse).
    """
    import asdf

    key, inverse_key = ("dispx", "invdispx") if pupil.upper() == "GRISMR" else ("dispy", "invdispy")
    with asdf.open(path, lazy_load=False, memmap=False) as handle:
        tree = {k: v for k, v in handle.tree.items() if k not in ("asdf_library", "history")}
    if tree.get(inverse_key) is None:
        tree[inverse_key] = [_fit_inverse(models) for models in tree[key]]
    out = folder / path.name.replace(".asdf", "_inv.asdf")
    asdf.AsdfFile(tree).write_to(out)
    return out


def _fit_inverse(coefficients, degree: int = 3):
    """t(d) over the field for d(t; x0, y0) = sum_i C_i(x0, y0) t^i (least squares)."""
    from astropy.modeling.models import Polynomial1D

    grid = np.linspace(0.0, 2047.0, 9)
    x0, y0 = (a.ravel()[:, None] for a in np.meshgrid(grid, grid))
    t = np.linspace(0.0, 1.0, 61)[None, :]
    d = sum(c(x0, y0) * t**i for i, c in enumerate(coefficients))
    coeffs = np.polynomial.polynomial.polyfit(d.ravel(), np.broadcast_to(t, d.shape).ravel(), degree)
    return Polynomial1D(degree, **{f"c{k}": float(v) for k, v in enumerate(coeffs)})


# --------------------------------------------------------------------------- the two runs

def run_webbcal(asn: Path, refs: dict, refs_dir: Path, outdir: Path) -> Measurement:
    outdir.mkdir(parents=True, exist_ok=True)
    cal = outdir / "webbcal_cal.fits"
    argv = [sys.executable, "-c",
            "import logging, sys; logging.basicConfig(level=logging.INFO, "
            "format='%(name)s %(levelname)s: %(message)s'); "
            "from webbcal.commands.spec2 import spec2; spec2.main(sys.argv[1:], standalone_mode=True)",
            str(asn), "-o", str(cal), "--refs", str(refs_dir)]
    for reftype, path in refs.items():
        argv += [f"--override-{reftype}", str(path)]
    result = measure_process(argv, single_thread_env(), outdir / "webbcal.log")
    _check(result, "webbcal")
    log = result.log_path.read_text(errors="replace")
    result.step_seconds = {m.group(1): float(m.group(3)) for m in WEBBCAL_STEP_LINE.finditer(log)}
    total = WEBBCAL_TOTAL_LINE.search(log)
    result.extra = {"pipeline_s": float(total.group(1)) if total else None, "cal": cal,
                    "x1d": outdir / "webbcal_x1d.fits"}
    return result


def run_official(asn: Path, refs: dict, outdir: Path) -> Measurement:
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="jwst_spec2_", dir=outdir))
    script = scratch / "child.py"
    script.write_text(_CHILD)
    request = {"input": str(asn.resolve()), "output_dir": str(outdir), "refs": refs,
               "wfss_steps": list(STEPS),
               "report": str(scratch / "report.json")}
    (scratch / "request.json").write_text(json.dumps(request, indent=1))
    env = child_environment(scratch)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = measure_process([sys.executable, str(script), str(scratch / "request.json")], env,
                             scratch / "jwst.log")
    _check(result, "official jwst")
    report = read_report(scratch / "report.json", scratch / "jwst.log")
    result.step_seconds = {k: v for k, v in report.step_seconds.items() if k in STEPS}
    root = json.loads(asn.read_text())["products"][0]["name"]
    result.extra = {"pipeline_s": report.call_seconds, "import_s": report.import_seconds,
                    "cal": outdir / f"{root}_cal.fits", "x1d": outdir / f"{root}_x1d.fits"}
    return result


def _check(result: Measurement, who: str) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{who} failed (exit {result.returncode}); log {result.log_path}:\n" + result.log_tail())


# --------------------------------------------------------------------------- comparison

def agreement(ours: dict, theirs: dict) -> list[list]:
    """Background scale, slits (count, boxes) and extracted flux of the two products."""
    from astropy.io import fits

    rows = []
    scale = [fits.getval(p, "BKGD_SCL") for p in (ours["cal"], theirs["cal"])]
    rows.append(["background scale BKGD_SCL", f"{scale[0]:.6g}", f"official {scale[1]:.6g} "
                 f"(rel diff {scale[0] / scale[1] - 1:+.2e})"])
    slits = [_slits(p) for p in (ours["cal"], theirs["cal"])]
    common = sorted(set(slits[0]) & set(slits[1]))
    same_box = sum(slits[0][k] == slits[1][k] for k in common)
    rows.append(["slits (source, order)", str(len(slits[0])), f"official {len(slits[1])}, common {len(common)}"])
    rows.append(["identical cut-out boxes", f"{same_box}/{len(common)}", ""])
    flux = [_spectra(p) for p in (ours["x1d"], theirs["x1d"])]
    ratios = []
    for key in sorted(set(flux[0]) & set(flux[1])):
        (wa, fa), (wb, fb) = flux[0][key], flux[1][key]
        if wa.size and wb.size:
            fb_on_a = np.interp(wa, wb, fb, left=np.nan, right=np.nan)
            good = np.isfinite(fa) & np.isfinite(fb_on_a) & (np.abs(fb_on_a) > 0)
            if good.sum() > 10:
                ratios.append(np.median(fa[good] / fb_on_a[good]))
    if ratios:
        rows.append(["x1d median flux ratio webbcal/official", f"{np.median(ratios):.4f}",
                     f"over {len(ratios)} spectra; 5-95 %: {np.percentile(ratios, 5):.4f}-{np.percentile(ratios, 95):.4f}"])
    return rows


def _slits(path) -> dict:
    from astropy.io import fits

    out = {}
    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.name == "SCI":
                h = hdu.header
                out[(h["SOURCEID"], h["SPORDER"])] = (h["SLTSTRT1"], h["SLTSTRT2"], h["SLTSIZE1"], h["SLTSIZE2"])
    return out


def _spectra(path) -> dict:
    from astropy.io import fits

    out = {}
    with warnings.catch_warnings(), fits.open(path) as hdul:
        warnings.simplefilter("ignore")
        for hdu in hdul:
            if hdu.name != "EXTRACT1D":
                continue
            order = hdu.header.get("SPORDER")
            for row in hdu.data:
                wave, flux = np.asarray(row["WAVELENGTH"], float), np.asarray(row["FLUX"], float)
                keep = np.isfinite(wave)
                out[(int(row["SOURCE_ID"]), order)] = (wave[keep], flux[keep])
    return out


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
    parser.add_argument("--data", type=Path, help="a directory made by an earlier run (data_wfss)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--sources", type=int, default=100, help="catalog rows given to both")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-official", action="store_true", help="time webbcal alone")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="webbcal_bench_wfss_"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = args.data or make_data(workdir)
    asn, refs_dir, refs = bench_inputs(data, workdir, args.sources)
    print(f"association {asn} ({args.sources} catalog sources)")
    for reftype, path in refs.items():
        print(f"  {reftype:16s} {Path(path).name}")
    load_before = os.getloadavg()[0]
    ours_runs, theirs_runs = [], []
    for k in range(args.repeat):
        rundir = workdir / "runs" / f"{k:02d}"
        shutil.rmtree(rundir, ignore_errors=True)
        print(f"run {k + 1}/{args.repeat}: webbcal ...", flush=True)
        ours_runs.append(run_webbcal(asn, refs, refs_dir, rundir / "webbcal"))
        if not args.skip_official:
            print(f"run {k + 1}/{args.repeat}: official jwst ...", flush=True)
            theirs_runs.append(run_official(asn, refs, rundir / "official"))
        print(f"  webbcal {ours_runs[-1].wall_s:.1f} s"
              + (f", official {theirs_runs[-1].wall_s:.1f} s" if theirs_runs else ""))
    ours = median_measurement(ours_runs)
    theirs = median_measurement(theirs_runs) if theirs_runs else Measurement(
        float("nan"), float("nan"), 0, ours.log_path)
    title = (f"Spec2 (NRC_WFSS) on one full-frame grism exposure, {args.sources}-source catalog, one core"
             + (f", median of {args.repeat}" if args.repeat > 1 else ""))
    report = [format_table(["step [s]", "webbcal", "official", "webbcal/official"],
                           timing_rows(ours, theirs), title),
              f"Machine: {os.cpu_count()} CPUs, 1-min load {load_before:.1f} before, {os.getloadavg()[0]:.1f} after."]
    if theirs_runs:
        report.append(format_table(["agreement", "value", "note"],
                                   agreement(ours_runs[-1].extra, theirs_runs[-1].extra),
                                   "webbcal vs official products"))
    publish_report(report, workdir, "wfss")
    return 0


if __name__ == "__main__":
    sys.exit(main())
