"""SIGKILL the whole Snakemake process group in the middle of Detector1, rerun, and get
exactly the products of an uninterrupted run, with no temporary file left anywhere.

The kill lands while a Detector1 job is writing a product when the poll catches a
``.webbcal-tmp-*`` file, else as soon as the first rate file exists (the stage half
done, the other job still running), else 8 s into the stage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from .helpers import assert_same_products, checkout_env, prepare_run, run_process, temporaries

pytestmark = pytest.mark.slow

EXPOSURES = 3


def _rates(out):
    return sorted(out.glob("*_rate.fits"))


def _kill_during_detector1(command, run_dir, timeout=300) -> dict:
    """Start Snakemake in its own process group; SIGKILL the group mid-Detector1."""
    out = run_dir / "out"
    env = checkout_env()
    env.pop("WEBBCAL_REFS", None)
    with open(run_dir / "killed.log", "w") as log:
        proc = subprocess.Popen(command, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    state = {"temporaries": [], "rates_done": 0, "killed": False}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            started = out.exists() and any((out / "logs" / "detector1").glob("*.log"))
            if started:
                first_job = state.setdefault("first_job", time.monotonic())
                writing = [p.name for p in out.glob(".webbcal-tmp-*")]
                # best: while a product is being written; else once a rate exists (the
                # stage half done); else 8 s into the stage
                if writing or _rates(out) or time.monotonic() > first_job + 8:
                    os.killpg(proc.pid, signal.SIGKILL)
                    state.update(temporaries=writing, killed=True)
                    break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not state["killed"]:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    state["returncode"] = proc.returncode
    state["rates_done"] = len(_rates(out))
    return state


def test_sigkill_mid_detector1_then_rerun_is_identical(reference_run, workflow_runs):
    run_dir = workflow_runs / "run_kil"
    command = prepare_run(run_dir) + ["--cores", "2"]
    state = _kill_during_detector1(command, run_dir)
    assert state["killed"] and state["returncode"] == -signal.SIGKILL, state  # killed, not finished
    assert state["rates_done"] < EXPOSURES, state  # Detector1 was not complete
    print(f"killed with {state['rates_done']} rate file(s) done, temporaries caught: {state['temporaries']}")

    survivors = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout.split()
    assert survivors == [], f"processes of the killed run still alive: {survivors}"

    rerun = run_process(command, run_dir, timeout=600)
    assert rerun.code == 0, rerun.stderr[-3000:]
    assert temporaries(run_dir / "out") == []
    assert len(_rates(run_dir / "out")) == EXPOSURES
    assert_same_products(reference_run, run_dir)
