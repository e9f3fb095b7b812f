"""Products are bit-identical between --cores 1 and --cores 2, and between two runs of
the same inputs and seed. Excepted, by name: DATE, CAL_VCS, and the processing time in
the provenance (HISTORY card, ASDF history entry) — see ``helpers.VOLATILE_KEYWORDS``.

Each workflow run simulates 3 SUB160 exposures and calibrates them (~ 20 s): slow. The
fast test pins the two causes of differing bytes these runs found: asdf's extension list
and the SCI header's card order both followed ``set`` order, which changes with Python's
hash seed from one process to the next.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from .helpers import ROOT, checkout_env, compare_runs, products_of, run_workflow

_WRITE_BOTH = """
import sys
from astropy.table import Table
from webbcal.io.product import write_product
from webbcal.refs.formats import write_reference
sys.path.insert(0, "tests/io")
from io_builders import make_rate, imaging_wcs
out = sys.argv[1]
write_reference(out + "/abvega.asdf", "abvegaoffset", {"EXP_TYPE": "NRC_IMAGE", "USEAFTER": "2022-01-01T00:00:00"},
                tree={"abvega_offset": Table({"filter": ["F200W"], "pupil": ["CLEAR"], "abvega_offset": [1.8]})})
rate = make_rate()
for i, key in enumerate(("RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF", "PA_V3", "VPARITY", "V3I_YANG")):
    rate.meta[key] = float(i)
rate.tree = {"meta": {"wcs": imaging_wcs()}}
rate.meta["DATE"] = "fixed"
write_product(rate, out + "/x_rate.fits")
"""


def test_bytes_do_not_depend_on_the_hash_seed(tmp_path):
    """An ASDF reference (astropy extensions) and a product with SCI keywords and a gwcs,
    written by processes with different PYTHONHASHSEED: same bytes (DATE aside)."""
    from astropy.io import fits

    results = []
    for seed in ("1", "2", "3"):
        out = tmp_path / seed
        out.mkdir()
        env = checkout_env(PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", _WRITE_BOTH, str(out)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        with fits.open(out / "x_rate.fits") as hdul:
            sci_order = list(hdul["SCI"].header)
            asdf_bytes = bytes(hdul["ASDF"].data[0][0])
        results.append(((out / "abvega.asdf").read_bytes(), sci_order, asdf_bytes))
    assert results[0] == results[1] == results[2]


def _expected_products(run):
    names = products_of(run / "out")
    assert sum(n.endswith("_rate.fits") and "/" not in n for n in names) == 3, sorted(names)
    return names


@pytest.mark.slow
def test_one_core_equals_two_cores(reference_run, workflow_runs):
    serial = run_workflow(workflow_runs / "run_c1a", cores=1)
    _expected_products(serial)
    assert compare_runs(reference_run, serial) == {}


@pytest.mark.slow
def test_same_seed_twice_is_bit_identical(reference_run, workflow_runs):
    again = run_workflow(workflow_runs / "run_c2b", cores=2)
    names = _expected_products(again)
    assert any(n.startswith("simulation/refs/") and n.endswith(".asdf") for n in names)  # ASDF refs compared too
    assert compare_runs(reference_run, again) == {}
