"""Each rule's ``resources: mem_mb`` covers the peak memory its job really reaches.

A stage runs as its own process on a simulated program (the ``webbcal`` command the rule
script or shell wraps), and its peak resident set size is what the kernel reports for it
(``RUSAGE_CHILDREN`` of a small launcher process that runs nothing else). The rule's
mem_mb is what Snakemake itself computes for the job: ``snakemake --dry-run`` on the same
files prints every job's resources; the checkpoints it cannot show yet (simulate,
associations) give a plain number in their rule file. The check is mem_mb >= peak × MARGIN.

Sizes: the demo program (SUB640, 6 groups, 2 exposures) runs always (~45 s); full frame
(BRIGHT2, 10 groups, 2 exposures), the size the formulas were fitted on, is ``slow``.
The preview rules are not measured.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .helpers import ROOT, checkout_env, snakemake_command

MARGIN = 1.2  # the rule must leave 20 % headroom over the measured peak

_JOB = re.compile(r"^rule (\w+):\n(.*?)(?=\n\n|\Z)", re.M | re.S)
_MEM = re.compile(r"^\s*resources:.*?\bmem_mb=(\d+)", re.M)
_WILDCARDS = re.compile(r"^\s*wildcards: (.*)$", re.M)


@dataclass
class Peak:
    rule: str
    job: str  # the wildcard value: exposure or mosaic
    peak_mb: float


# A fresh interpreter runs the command and reports RUSAGE_CHILDREN. Measuring our own child
# directly would be wrong: Linux keeps a process's peak RSS across exec, so a child forked
# from this (large) pytest process starts with pytest's size as its "peak".
_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(str(peak_kb))
sys.exit(code)
"""


def run_measured(argv: list[str], cwd: Path) -> float:
    """Peak RSS (MB) of the process running ``argv``, which must succeed."""
    env = checkout_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("WEBBCAL_REFS", None)
    report = cwd / "peak_kb.txt"
    with open(cwd / "measured.log", "a") as log:
        done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(report), *map(str, argv)], cwd=cwd,
                              env=env, stdout=log, stderr=subprocess.STDOUT, timeout=1200)
    assert done.returncode == 0, (cwd / "measured.log").read_text()[-3000:]
    return int(report.read_text()) / 1024  # kB on Linux


def webbcal(*args: str) -> list[str]:
    return [sys.executable, "-m", "webbcal.cli", *map(str, args)]


def simulate(outdir: Path, *options: str) -> tuple[Path, Peak]:
    """The simulated program, and the peak of the simulate job that made it."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    peak = run_measured(webbcal("simulate", outdir, "--seed", "4", *options), outdir.parent)
    return outdir, Peak("simulate", "", peak)


def measure_stages(program: Path, work: Path) -> list[Peak]:
    """Run detector1 and image2 on every exposure, the association generator, then image3,
    each process measured."""
    refs = program / "refs"
    work.mkdir(parents=True, exist_ok=True)
    generate = webbcal("asn", "generate", program / "uncal", "-o", work / "asn")
    peaks = [Peak("associations", "", run_measured(generate, work))]
    for uncal in sorted((program / "uncal").glob("*_uncal.fits")):
        name = uncal.name.removesuffix("_uncal.fits")
        rate = work / f"{name}_rate.fits"
        detector1 = webbcal("detector1", uncal, "--refs", refs, "-o", rate)
        image2 = webbcal("image2", rate, "--refs", refs, "-o", work / f"{name}_cal.fits")
        peaks.append(Peak("detector1", name, run_measured(detector1, work)))
        peaks.append(Peak("image2", name, run_measured(image2, work)))
    for asn in sorted((program / "asn").glob("*_image3_*_asn.json")):
        local = shutil.copy(asn, work / asn.name)  # members resolve next to the association
        mosaic = json.loads(Path(local).read_text())["products"][0]["name"]
        image3 = webbcal("image3", local, "--refs", refs, "-o", work)
        peaks.append(Peak("image3", mosaic, run_measured(image3, work)))
    return peaks


def fixed_rule_memory() -> dict[tuple[str, str], int]:
    """(rule, "") -> mem_mb of the rules that give it as a number in ``rules/*.smk``: their
    jobs are checkpoints a dry run on given inputs does not show."""
    memory = {}
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for rule, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)", path.read_text(), re.M | re.S):
            number = re.search(r"^\s*mem_mb=(\d+)", body, re.M)
            if number:
                memory[(rule, "")] = int(number.group(1))
    return memory


def rule_memory(program: Path, workdir: Path) -> dict[tuple[str, str], int]:
    """(rule, wildcard value) -> mem_mb, as Snakemake evaluates it for this program's jobs,
    plus the rules with a fixed number."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"input_dir": str(program / "uncal"), "refs_dir": str(program / "refs"),
              "asn_dir": str(program / "asn"), "output_dir": "out"}
    (workdir / "my.yaml").write_text(yaml.safe_dump(config))
    command = snakemake_command(workdir, "--configfile", str(workdir / "my.yaml"), "--dry-run", "--cores", "1")
    done = subprocess.run(command, cwd=workdir, env=checkout_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    memory = fixed_rule_memory()
    for rule, body in _JOB.findall(done.stdout + "\n" + done.stderr):
        mem, wildcards = _MEM.search(body), _WILDCARDS.search(body)
        if mem:
            job = wildcards.group(1).split("=", 1)[1] if wildcards else ""
            memory[(rule, job)] = int(mem.group(1))
    return memory


def assert_enough(peaks: list[Peak], memory: dict) -> str:
    """Every measured job's mem_mb covers its peak with MARGIN; returns the table."""
    rows, short = [], []
    for peak in peaks:
        assert (peak.rule, peak.job) in memory, f"no dry-run job for {peak}; jobs: {sorted(memory)}"
        mem_mb = memory[(peak.rule, peak.job)]
        rows.append(f"{peak.rule:<10} {peak.job:<45} peak {peak.peak_mb:7.0f} MB  mem_mb {mem_mb:6d}")
        if mem_mb < MARGIN * peak.peak_mb:
            short.append(rows[-1])
    table = "\n".join(rows)
    print("\n" + table)
    assert not short, "mem_mb below the measured peak x %.1f:\n%s" % (MARGIN, "\n".join(short))
    return table


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(program, peak of its simulation): the demo preset with 2 exposures."""
    return simulate(tmp_path_factory.mktemp("resources") / "demo", "--preset", "demo", "--ndither", "2")


@pytest.fixture(scope="module")
def demo_program(demo):
    return demo[0]


@pytest.fixture(scope="module")
def demo_memory(demo_program, tmp_path_factory):
    return rule_memory(demo_program, tmp_path_factory.mktemp("dry_run"))


def test_rule_memory_covers_the_demo_peaks(demo, demo_memory, tmp_path):
    program, simulation = demo
    peaks = [simulation, *measure_stages(program, tmp_path / "products")]
    assert {p.rule for p in peaks} == {"simulate", "associations", "detector1", "image2", "image3"}
    assert all(p.peak_mb > 30 for p in peaks), peaks  # real work measured (a bare interpreter: ~14 MB)
    assert_enough(peaks, demo_memory)


def test_the_dry_run_gives_one_mem_mb_per_job(demo_program, demo_memory):
    """Guards the parsing above: one positive mem_mb per exposure and per association."""
    exposures = {p.name.removesuffix("_uncal.fits") for p in (demo_program / "uncal").glob("*_uncal.fits")}
    jobs = {}
    for (rule, job), mem_mb in demo_memory.items():
        assert mem_mb > 0, (rule, job)
        jobs.setdefault(rule, set()).add(job)
    assert jobs["detector1"] == jobs["image2"] == exposures
    assert len(jobs["image3"]) == len(list((demo_program / "asn").glob("*_image3_*_asn.json")))
    assert jobs["simulate"] == jobs["associations"] == {""}


@pytest.mark.slow
def test_rule_memory_covers_the_full_frame_peaks(tmp_path):
    """Full frame, BRIGHT2 10 groups, 2 exposures (~3 min): the size users run."""
    program, simulation = simulate(tmp_path / "full", "--subarray", "full", "--readpatt", "bright2",
                                   "--ngroups", "10", "--ndither", "2", "--nsources", "300")
    peaks = [simulation, *measure_stages(program, tmp_path / "products")]
    assert_enough(peaks, rule_memory(program, tmp_path / "dry_run"))
