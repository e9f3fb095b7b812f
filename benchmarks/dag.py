"""Benchmark DAG planning: `snakemake -n` on a directory of 1000 exposures.

Planning reads every exposure's primary header (the reference files the cache selects for
it are rule inputs) and builds one detector1 job per exposure. The exposures here are
tiny placeholders: header-only FITS files carrying the full primary header of a real
simulated uncal (one `webbcal simulate` exposure, SUB640 NRCA1), renumbered into
observations of 50 exposures each; the reference cache is that simulation's, so every
exposure selects real references. Target: the DAG in ≤ 20 s (issue 8, item 7).

    python benchmarks/dag.py                    # 1000 exposures, 3 runs, median printed
    python benchmarks/dag.py --exposures 5000 --repeat 1 --workdir /tmp/dagbench

Exit status 1 when the median is over the target (or the dry run fails).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from astropy.io import fits

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 20.0
EXPOSURES_PER_OBSERVATION = 50
JOBS_LINE = re.compile(r"^total\s+(\d+)\s*$", re.MULTILINE)


def template_exposure(workdir: Path, seed: int = 1) -> tuple[fits.Header, Path]:
    """The primary header of one simulated uncal and its reference cache (simulated once)."""
    sim = workdir / "template"
    found = sorted((sim / "uncal").glob("*_uncal.fits"))
    if not found:
        from webbcal.simulate.program import settings_for, simulate_program

        print(f"simulating one demo exposure and its references into {sim} ...", flush=True)
        simulate_program(sim, settings_for("demo", ndither=1), seed=seed)
        found = sorted((sim / "uncal").glob("*_uncal.fits"))
    return fits.getheader(found[0], 0), sim / "refs"


def placeholder_name(program: str, observation: int, number: int, detector: str) -> str:
    return f"jw{program}{observation:03d}001_02101_{number:05d}_{detector.lower()}"


def write_placeholders(template: fits.Header, folder: Path, count: int) -> list[str]:
    """``count`` header-only uncal files, numbered like a real program's exposures."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*_uncal.fits"):
        old.unlink()
    program, detector = str(template["PROGRAM"]), str(template["DETECTOR"])
    names = []
    for index in range(count):
        observation = 1 + index // EXPOSURES_PER_OBSERVATION
        number = 1 + index % EXPOSURES_PER_OBSERVATION
        header = template.copy()
        header["OBSERVTN"] = f"{observation:03d}"
        header["EXPOSURE"] = f"{number:05d}"
        header["EXPSPCIN"] = number
        header["EXPCOUNT"] = EXPOSURES_PER_OBSERVATION
        header["VISIT_ID"] = f"{program}{observation:03d}001"
        header["OBS_ID"] = f"V{program}{observation:03d}001P0000000002101"
        name = placeholder_name(program, observation, number, detector)
        fits.PrimaryHDU(header=header).writeto(folder / f"{name}_uncal.fits", overwrite=True)
        names.append(name)
    return names


def dry_run(workdir: Path, config: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of `snakemake -n` (a whole process, as a user runs it), job count.

    CPU time (user + system) is what a busy shared machine inflates least.
    """
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet", "rules",
               "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "WEBBCAL_REFS"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"snakemake -n failed ({result.returncode}):\n{output[-3000:]}")
    total = JOBS_LINE.search(output)
    return seconds, cpu, int(total.group(1)) if total else -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, default=1000, help="placeholder exposures (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="dry runs; the median is reported")
    parser.add_argument("--workdir", type=Path, help="keep the template and placeholders here")
    args = parser.parse_args(argv)

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="webbcal-dag-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    header, refs = template_exposure(workdir)
    start = time.perf_counter()
    names = write_placeholders(header, workdir / "uncal", args.exposures)
    print(f"wrote {len(names)} placeholder exposures ({(workdir / 'uncal' / (names[0] + '_uncal.fits')).stat().st_size} "
          f"bytes each) in {time.perf_counter() - start:.1f} s")
    config = workdir / "dag.yaml"
    config.write_text(yaml.safe_dump({"input_dir": "uncal", "refs_dir": str(refs.relative_to(workdir)),
                                      "output_dir": "out"}))

    load_before = os.getloadavg()[0]
    runs, cpus = [], []
    for _ in range(args.repeat):
        seconds, cpu, jobs = dry_run(workdir, config)
        runs.append(seconds)
        cpus.append(cpu)
        print(f"  snakemake -n: {seconds:.1f} s wall, {cpu:.1f} s CPU, {jobs} jobs")
    median = statistics.median(runs)
    verdict = "OK" if median <= TARGET_S else "OVER TARGET"
    # The machine may be shared: other work slows planning, so say how busy it was.
    print(f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
          f"on {os.cpu_count()} cores")
    print(f"DAG planning for {args.exposures} exposures: {median:.1f} s "
          f"(median of {len(runs)}; CPU {statistics.median(cpus):.1f} s; target <= {TARGET_S:.0f} s) {verdict}")
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
