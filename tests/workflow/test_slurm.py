"""The workflow on a real SLURM cluster: `--profile profiles/slurm` against a local run.

A single-node cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd) is started on this
machine by ``scripts/local_slurm.sh``; the built-in simulated program is calibrated once
locally and once through the SLURM executor plugin; every job must have gone through the
scheduler (sbatch job ids in Snakemake's log, COMPLETED in ``sacct`` with the rule's
resources) and the products must be the same. What cannot match between two runs and is
left out of the comparison, explicitly: the DATE keyword, the timestamps inside HISTORY,
and the ASDF extension (the serialized metadata tree, which holds that same date and
history). Every other keyword (CAL_VCS, the code version, included: both runs must use
the same code) and every image and table extension are compared bit for bit.

The cluster test is marked slow (about 3.5 minutes); the fast tests below check the
script's bookkeeping and the log and product comparisons this test relies on.
It needs root and Debian's apt-get (installs the SLURM packages and, with pip, the executor
plugin when missing). Snakemake runs under ``timeout -s INT``: the plugin can wait forever
when the scheduler loses a job, and only SIGINT stops it cleanly (cancelling its jobs).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = ROOT / "scripts" / "local_slurm.sh"
PLUGIN_REQUIREMENT = "snakemake-executor-plugin-slurm==2.8.0"
RUN_TIMEOUT_S = 900
UNCOMPARABLE_KEYWORDS = {"DATE"}          # when the file was written
UNCOMPARABLE_EXTENSIONS = {"ASDF"}        # metadata tree: holds DATE and HISTORY again
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


def require_debian_root():
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("the local SLURM cluster needs root and apt-get (Debian)")


def install_requirements():
    """SLURM from Debian packages, the executor plugin from PyPI, each only when missing."""
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "install"], check=True, timeout=600)
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", PLUGIN_REQUIREMENT],
                       check=True, timeout=600)


def cluster(command: str, state_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, WEBBCAL_SLURM_DIR=str(state_dir))
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), command], env=env,
                          capture_output=True, text=True, timeout=300)


def recorded_pids(state_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (state_dir / "pids").glob("*.pid")
            if not p.stem.endswith(".daemon")}


def running(pid: int) -> bool:
    """Process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def slurm():
    """A running local cluster; stopped afterwards, checking its daemons are gone."""
    require_debian_root()
    install_requirements()
    # Not under pytest's 0700 tmp tree: mariadbd runs as mysql and must reach its datadir.
    state_dir = Path(tempfile.mkdtemp(prefix="webbcal-slurm-"))
    started = cluster("start", state_dir)
    pids = recorded_pids(state_dir) if (state_dir / "pids").is_dir() else {}
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield state_dir
    finally:
        stopped = cluster("stop", state_dir)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    alive = {name: pid for name, pid in pids.items() if running(pid)}
    assert not alive, f"daemons still running after stop: {alive}"
    assert not Path("/etc/slurm/slurm.conf").is_symlink(), "stop left /etc/slurm/slurm.conf"
    shutil.rmtree(state_dir, ignore_errors=True)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The workflow on the default (simulated) program in ``workdir``, under timeout -s INT."""
    command = ["timeout", "-s", "INT", "-k", "30", str(RUN_TIMEOUT_S),
               sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(ROOT / "config" / "config.yaml"),
               *args]
    env = {k: v for k, v in os.environ.items() if k != "WEBBCAL_REFS"}
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    (workdir / "snakemake.out").write_text(result.stdout + result.stderr)
    return result


def sacct(job_ids: list[str]) -> dict[str, dict[str, str]]:
    fields = ["JobID", "State", "Comment", "ReqMem", "Timelimit", "AllocCPUS"]
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids),
                          "-o", ",".join(f + "%300" if f == "Comment" else f for f in fields)],
                         capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]
    return {row["JobID"]: row for row in rows}


def submitted_jobs(log: str) -> dict[str, dict]:
    """SLURM job id -> the Snakemake job it ran: rule, wildcards, threads, resources.

    Snakemake prints a block per job (``rule X:`` / ``checkpoint X:``; ``localrule``
    for jobs it runs itself) and, per submission, "Job N has been submitted with SLURM
    jobid M".
    """
    blocks, current = {}, None
    for line in log.splitlines():
        header = re.match(r"^(rule|checkpoint) (\w+):$", line)
        if header:
            current = {"rule": header.group(2), "wildcards": "", "threads": 1, "resources": {}}
        elif line.startswith("localrule "):
            current = None
        elif current is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "jobid":
                blocks[value] = current
            elif key == "wildcards":
                current["wildcards"] = value
            elif key == "threads":
                current["threads"] = int(value)
            elif key == "resources":
                current["resources"] = dict(item.split("=", 1) for item in value.split(", "))
    return {slurm_id: blocks[jobid] for jobid, slurm_id in SUBMITTED.findall(log)}


def slurm_minutes(limit: str) -> int:
    """sacct's Timelimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, _ = (int(v) for v in clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + minutes


def products(workdir: Path) -> dict[str, Path]:
    """Every FITS file the run wrote (simulation included), by path under results/."""
    results = workdir / "results"
    return {str(p.relative_to(results)): p for p in results.rglob("*.fits")}


def comparable_cards(header: fits.Header) -> dict[str, object]:
    """Keyword -> value (HISTORY joined, its timestamps masked), without the write date."""
    cards = {card.keyword: card.value for card in header.cards
             if card.keyword not in UNCOMPARABLE_KEYWORDS | {"HISTORY", "COMMENT", ""}}
    cards["HISTORY"] = TIMESTAMP.sub("<time>", "\n".join(str(v) for v in header.get("HISTORY", [])))
    return cards


def product_differences(local: Path, cluster_run: Path) -> list[str]:
    """Every difference between two FITS files, but for the uncomparable parts."""
    found = []
    with fits.open(local) as a, fits.open(cluster_run) as b:
        if [h.name for h in a] != [h.name for h in b]:
            return [f"extensions {[h.name for h in a]} != {[h.name for h in b]}"]
        for ha, hb in zip(a, b):
            if ha.name in UNCOMPARABLE_EXTENSIONS:
                continue
            ca, cb = comparable_cards(ha.header), comparable_cards(hb.header)
            found += [f"{ha.name}[{key}]: {ca.get(key)!r} != {cb.get(key)!r}"
                      for key in sorted(set(ca) | set(cb)) if ca.get(key) != cb.get(key)]
            if ha.data is None or hb.data is None:
                if (ha.data is None) != (hb.data is None):
                    found.append(f"{ha.name}: data in one product only")
            elif isinstance(ha, fits.BinTableHDU):
                # a mosaic's HDRTAB holds its inputs' keywords, DATE among them: column by
                # column, the uncomparable keywords' columns left out
                if ha.columns.names != hb.columns.names:
                    found.append(f"{ha.name}: columns differ")
                else:
                    found += [f"{ha.name}: column {name} differs" for name in ha.columns.names
                              if name.upper() not in UNCOMPARABLE_KEYWORDS
                              and np.asarray(ha.data[name]).tobytes() != np.asarray(hb.data[name]).tobytes()]
            elif ha.data.dtype != hb.data.dtype or ha.data.shape != hb.data.shape:
                found.append(f"{ha.name}: {ha.data.dtype}{ha.data.shape} != {hb.data.dtype}{hb.data.shape}")
            elif not np.array_equal(ha.data, hb.data, equal_nan=True):
                same = ha.data == hb.data
                if ha.data.dtype.kind == "f":
                    same |= np.isnan(ha.data) & np.isnan(hb.data)
                changed = np.count_nonzero(~same)
                found.append(f"{ha.name}: {changed} of {ha.data.size} pixels differ")
    return [f"{local.name} {d}"[:300] for d in found]


@pytest.mark.slow
def test_slurm_profile_runs_jobs_through_the_scheduler_with_local_results(slurm, tmp_path):
    local_dir, cluster_dir = tmp_path / "local", tmp_path / "slurm"
    local_dir.mkdir()
    cluster_dir.mkdir()

    local = snakemake(local_dir, "--cores", "2")
    assert local.returncode == 0, local.stderr[-3000:]

    run = snakemake(cluster_dir, "--profile", str(ROOT / "profiles" / "slurm"),
                    "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "2")
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]

    # Every job but the local target went through sbatch: the simulation checkpoint and
    # one job per exposure and stage ...
    exposures = sorted(n.removesuffix("_rate.fits") for n in products(local_dir)
                       if "/" not in n and n.endswith("_rate.fits"))
    assert len(exposures) == 4
    planned = len(re.findall(r"^(?:rule|checkpoint) \w+:$", log, re.MULTILINE))
    jobs = submitted_jobs(log)
    assert len(SUBMITTED.findall(log)) == planned == len(jobs), log[-3000:]
    assert sorted(j["wildcards"] for j in jobs.values() if j["rule"] == "detector1") == \
        [f"exposure={e}" for e in exposures]
    assert [j["rule"] for j in jobs.values()].count("simulate") == 1
    # ... and the scheduler ran each to completion with the rule's threads, memory and time.
    accounted = sacct(list(jobs))
    assert sorted(accounted) == sorted(jobs)
    for slurm_id, job in jobs.items():
        row = accounted[slurm_id]
        wildcards = "_".join(v.split("=", 1)[1] for v in job["wildcards"].split(", ") if v).replace("/", "_")
        assert row["State"] == "COMPLETED", (slurm_id, job, row)
        assert row["Comment"] == f"rule_{job['rule']}" + (f"_wildcards_{wildcards}" if wildcards else "")
        assert int(row["AllocCPUS"]) == job["threads"]
        assert row["ReqMem"] == f"{job['resources']['mem_mb']}M", (job, row)
        assert slurm_minutes(row["Timelimit"]) == int(job["resources"]["runtime"]), (job, row)
    # The executor kept each job's SLURM log, under its rule and wildcards.
    for exposure in exposures:
        assert list((cluster_dir / ".snakemake" / "slurm_logs" / "rule_detector1" / exposure).glob("*.log"))

    # Same products, bit for bit but for the write date.
    mine, theirs = products(local_dir), products(cluster_dir)
    assert sorted(mine) == sorted(theirs)
    assert len([n for n in mine if "/" not in n]) >= 2 * len(exposures)  # rate and rateints at least
    differences = [d for name in sorted(mine) for d in product_differences(mine[name], theirs[name])]
    assert not differences, "\n".join(differences[:40])


# ---------------------------------------------------------------- fast checks of the helpers

SNAKEMAKE_LOG = """\
[Tue Nov 24 07:34:30 2026]
checkpoint simulate:
    output: results/simulation
    jobid: 1
    resources: tmpdir=<TBD>, mem_mb=2000, mem=2 GB, runtime=60
Job 1 has been submitted with SLURM jobid 7 (log: x/7.log).
[Tue Nov 24 07:35:00 2026]
rule detector1:
    jobid: 4
    wildcards: exposure=jw01_nrca1
    threads: 2
    resources: tmpdir=<TBD>, mem_mb=589, runtime=20
Job 4 has been submitted with SLURM jobid 10 (log: x/10.log).
[Tue Nov 24 07:36:00 2026]
localrule all:
    jobid: 0
"""


def test_submitted_jobs_maps_slurm_ids_to_rules_and_resources():
    jobs = submitted_jobs(SNAKEMAKE_LOG)
    assert sorted(jobs) == ["10", "7"]
    assert jobs["7"]["rule"] == "simulate" and jobs["7"]["resources"]["mem_mb"] == "2000"
    assert jobs["10"] == {"rule": "detector1", "wildcards": "exposure=jw01_nrca1", "threads": 2,
                          "resources": {"tmpdir": "<TBD>", "mem_mb": "589", "runtime": "20"}}
    assert [slurm_minutes(t) for t in ("00:20:00", "01:00:00", "1-02:03:00")] == [20, 60, 1563]


def test_product_differences_ignore_only_the_write_date(tmp_path):
    def write(name, date, history_time, pixel):
        primary = fits.PrimaryHDU()
        primary.header["DATE"] = date
        primary.header["FILTER"] = "F150W"
        primary.header.add_history(f"webbcal 0.1.0 {history_time}")
        sci = np.zeros((4, 4), np.float32)
        sci[0, 0] = np.nan
        sci[1, 1] = pixel
        fits.HDUList([primary, fits.ImageHDU(sci, name="SCI")]).writeto(tmp_path / name)
        return tmp_path / name

    first = write("a.fits", "2026-11-24T07:32:22.128", "2026-11-24T07:32:17.868", 1.0)
    rerun = write("b.fits", "2026-11-24T07:35:37.091", "2026-11-24T07:35:33.474", 1.0)
    changed = write("c.fits", "2026-11-24T07:35:37.091", "2026-11-24T07:35:33.474", 2.0)
    assert product_differences(first, rerun) == []
    assert product_differences(first, changed) == ["a.fits SCI: 1 of 16 pixels differ"]
    with fits.open(changed, mode="update") as hdul:
        hdul[0].header["FILTER"] = "F200W"
    assert "a.fits PRIMARY[FILTER]: 'F150W' != 'F200W'" in product_differences(first, changed)


def test_cluster_script_status_and_stop_of_a_cluster_never_started(tmp_path):
    status = cluster("status", tmp_path)
    assert status.returncode == 1
    assert [line.split()[:2] for line in status.stdout.splitlines()] == [
        [name, "stopped"] for name in ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")]
    stopped = cluster("stop", tmp_path)  # nothing recorded: nothing to stop, and no error
    assert stopped.returncode == 0, stopped.stderr
    assert cluster("frobnicate", tmp_path).returncode == 1
