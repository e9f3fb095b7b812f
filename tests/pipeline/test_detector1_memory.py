"""Detector1 memory does not grow with the number of exposures one process calibrates
(issue 4 §6): after the first exposure (imports, caches, the allocator's pools), each
further run returns to the same resident size."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

RUNS = 5

# Resident size after each run, in a fresh interpreter (pytest's own heap would hide it).
SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from webbcal.pipeline.detector1 import run_detector1

    def rss_mb():
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096 / 2**20

    uncal, refs, out, runs = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    for k in range(runs):
        run_detector1(uncal, rate_path=out / f"r{k}_rate.fits", refs_dir=refs)
        print(f"{rss_mb():.1f}", flush=True)
""")


@pytest.fixture(scope="module")
def sub640(tmp_path_factory):
    from webbcal.simulate.program import settings_for, simulate_program

    out = tmp_path_factory.mktemp("d1_memory")
    simulate_program(out, settings_for("demo", ndither=1), seed=2)
    [uncal] = sorted((out / "uncal").glob("*_uncal.fits"))
    return uncal, out / "refs"


def test_resident_memory_does_not_grow_with_exposures(sub640, tmp_path):
    uncal, refs = sub640
    # A fixed mmap threshold: glibc otherwise raises it as large blocks are freed and keeps
    # later ones on its heap, which reads as growth that is only the allocator's cache.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(uncal), str(refs), str(tmp_path), str(RUNS)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rss = [float(v) for v in done.stdout.split()]
    assert len(rss) == RUNS
    one_exposure_mb = 640 * 640 * 6 * 4 / 2**20  # the float32 ramp of this SUB640 exposure
    # runs 2..5 stay within a fraction of one ramp of run 2: nothing is kept per exposure
    assert max(rss[1:]) - rss[1] < 0.5 * one_exposure_mb, rss
