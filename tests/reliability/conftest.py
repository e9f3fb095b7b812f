"""Fixtures of the reliability tests, and the count of bad-input cases in the summary."""

from __future__ import annotations

import contextlib
import subprocess

import pytest

from .helpers import simulate_tiny


@pytest.fixture(scope="session")
def tiny_program(tmp_path_factory):
    """One simulated SUB64P exposure with its reference cache (never modified by tests)."""
    program = simulate_tiny(tmp_path_factory.mktemp("tiny_program"))
    [uncal] = sorted((program / "uncal").glob("*_uncal.fits"))
    return program, uncal


@pytest.fixture(scope="session")
def tiny_products(tiny_program, tmp_path_factory):
    """The tiny exposure's good rate and calibrated ramp (inputs of the step/image2 cases)."""
    from webbcal.pipeline.detector1 import run_detector1

    program, uncal = tiny_program
    out = tmp_path_factory.mktemp("tiny_products")
    run_detector1(uncal, rate_path=out / "x_rate.fits", rateints_path=out / "x_rateints.fits",
                  ramp_path=out / "x_ramp.fits", params={}, refs_dir=program / "refs")
    return out


@pytest.fixture(scope="session")
def full_disk(tmp_path_factory):
    """A directory on a 48 KiB tmpfs (a disk that fills on the first product); None if
    this machine does not let us mount one (not root)."""
    mountpoint = tmp_path_factory.mktemp("full_disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mountpoint)],
                          capture_output=True)
    if done.returncode != 0:
        yield None
        return
    yield mountpoint
    with contextlib.suppress(Exception):
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


def pytest_terminal_summary(terminalreporter):
    from .test_bad_input import CASES

    outcomes = {}
    for key in ("passed", "failed", "xfailed", "skipped", "xpassed"):
        for report in terminalreporter.stats.get(key, []):
            if "test_bad_input_case[" in report.nodeid:
                outcomes[key] = outcomes.get(key, 0) + 1
    if outcomes:
        summary = ", ".join(f"{n} {k}" for k, n in outcomes.items())
        terminalreporter.write_line(f"webbcal bad-input suite: {len(CASES)} distinct cases ({summary})")


@pytest.fixture(scope="session")
def workflow_runs(tmp_path_factory):
    """Directory for workflow runs; names of equal length (see helpers.fits_differences).

    Every workflow run of the session (and every child process started meanwhile) runs a
    copy of the checkout frozen here: runs compared byte for byte must execute the same
    code, while other people may edit the checkout during a several-minute slow session."""
    from .helpers import freeze_checkout, running_code_from

    runs = tmp_path_factory.mktemp("workflow_runs")
    with running_code_from(freeze_checkout(tmp_path_factory.mktemp("frozen_checkout"))):
        yield runs


@pytest.fixture(scope="session")
def reference_run(workflow_runs):
    """An uninterrupted `snakemake --cores 2` of the small program: what others must equal."""
    from .helpers import run_workflow

    return run_workflow(workflow_runs / "run_c2a", cores=2)
