"""Products are bit-identical between --cores 1 and --cores 2, and between two runs of
the same inputs and seed. Excepted, by name: DATE, CAL_VCS, and the processing time in
the provenance (HISTORY card, ASDF history entry) — see ``helpers.VOLATILE_KEYWORDS``.

Each workflow run simulates 3 SUB160 exposures and calibrates them (~ 20 s): slow. The
fast test pins the two causes of differing bytes these runs found: asdf's extension list
and the SCI header's card order both followed ``set`` order, which changes with Python's
hash seed from one process to the next.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from .helpers import (ROOT, assert_same_products, checkout_env, code_root, freeze_checkout, products_of,
                      record_run_context, run_workflow, running_code_from, snakemake_command)

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


def _fake_run(run_dir, sci, history_time, card, png, catalog_line):
    """A run directory holding what a workflow run leaves: a product, a preview, a catalog."""
    from astropy.io import fits

    out = run_dir / "out"
    out.mkdir(parents=True)
    primary = fits.PrimaryHDU()
    primary.header["DATE"] = history_time  # volatile: never reported
    primary.header.add_history(f"webbcal 0.1.0 (0123456789ab) {history_time}")
    primary.header["R_FLAT"] = card
    fits.HDUList([primary, fits.ImageHDU(sci, name="SCI")]).writeto(out / "x_cal.fits")
    (out / "x_cal.png").write_bytes(png)
    (out / "x_cat.ecsv").write_text(f"# header\nid flux\n{catalog_line}\n")
    record_run_context(run_dir, "start", cores=2)
    record_run_context(run_dir, "end", cores=2)
    return run_dir


def test_a_difference_is_reported_in_full(tmp_path):
    """What differs is in the failure message itself (CI output alone must diagnose a
    failure): the file, the card, how many pixels by how much, the bytes, the text lines,
    and whether the checkout's code changed between the runs. Volatile parts are silent."""
    sci = np.arange(20, dtype=np.float32).reshape(4, 5)
    changed = sci.copy()
    changed[2, 3] += np.float32(2.0 ** -20 * 13)  # one ulp-scale change in one pixel
    changed[0, 0] = np.nan
    png = bytes(range(256)) * 4
    run_a = _fake_run(tmp_path / "run_a", sci, "2026-01-01T00:00:00.000", "flat_1.fits", png, "1 2.5")
    run_b = _fake_run(tmp_path / "run_b", changed, "2026-01-01T00:00:09.999", "flat_2.fits",
                      png[:700] + b"\x00" + png[701:], "1 2.6")
    with pytest.raises(AssertionError) as failure:
        assert_same_products(run_a, run_b)
    message = str(failure.value)
    assert "3 product(s) differ" in message
    assert "-R_FLAT = flat_1.fits" in message and "+R_FLAT = flat_2.fits" in message
    assert "SCI data differ: 2 of 20 elements" in message and "NaN pattern differs at 1" in message
    assert "(2, 3): 13.0 vs 13.0000123977661" in message
    assert "x_cal.png" in message and "first at offset 700" in message
    assert "-1 2.5" in message and "+1 2.6" in message
    assert "the checkout's code was the same" in message
    assert "DATE" not in message and "HISTORY" not in message  # volatile: not differences

    assert_same_products(run_a, _fake_run(tmp_path / "run_c", sci, "2027-05-05T05:05:05.555",
                                          "flat_1.fits", png, "1 2.5"))


def test_workflow_runs_execute_a_frozen_checkout(tmp_path):
    """The cause of the one unexplained failure of the same-seed test: its runs executed
    the live checkout, which other people edit during a slow session (reproduced: an
    image3 edit 10 minutes into a loop gave crf files without their earlier provenance
    records, "ASDF extension differs"). Child processes now run one frozen copy, and if
    the code a comparison's runs executed still differs, the failure message names the
    changed files."""
    frozen = freeze_checkout(tmp_path / "frozen")
    assert (frozen / "Snakefile").read_bytes() == (ROOT / "Snakefile").read_bytes()
    assert (frozen / "webbcal" / "__init__.py").is_file() and (frozen / "rules" / "common.smk").is_file()
    with running_code_from(frozen):
        env = checkout_env()
        done = subprocess.run([sys.executable, "-c", "import webbcal; print(webbcal.__file__)"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == str(frozen / "webbcal" / "__init__.py"), done.stderr[-2000:]
        assert snakemake_command(tmp_path, "-n")[4] == str(frozen / "Snakefile")
        if (ROOT / ".git").is_dir():  # the frozen copy keeps the commit (CAL_VCS)
            revision = subprocess.run(
                [sys.executable, "-c", "from webbcal.io.provenance import vcs_revision as v; print(v())"],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60).stdout.strip()
            assert re.fullmatch(r"[0-9a-f]{12}", revision), revision
    assert code_root() == ROOT

    # Runs made by different code: the message names the file that changed.
    edited = freeze_checkout(tmp_path / "edited")
    (edited / "webbcal" / "__init__.py").write_text((edited / "webbcal" / "__init__.py").read_text() + "# edit\n")
    sci = np.zeros((2, 3), np.float32)
    with running_code_from(frozen):
        run_a = _fake_run(tmp_path / "run_a", sci, "2026-01-01T00:00:00.000", "f.fits", b"", "1")
    with running_code_from(edited):
        run_b = _fake_run(tmp_path / "run_b", sci + 1, "2026-01-01T00:00:00.000", "f.fits", b"", "1")
    with pytest.raises(AssertionError, match=r"(?s)SCI data differ: 6 of 6.*code changed between "
                                             r"run_a start and run_b start: webbcal/__init__.py"):
        assert_same_products(run_a, run_b)


def _expected_products(run):
    names = products_of(run / "out")
    assert sum(n.endswith("_rate.fits") and "/" not in n for n in names) == 3, sorted(names)
    return names


@pytest.mark.slow
def test_one_core_equals_two_cores(reference_run, workflow_runs):
    serial = run_workflow(workflow_runs / "run_c1a", cores=1)
    _expected_products(serial)
    assert_same_products(reference_run, serial)


@pytest.mark.slow
def test_same_seed_twice_is_bit_identical(reference_run, workflow_runs):
    again = run_workflow(workflow_runs / "run_c2b", cores=2)
    names = _expected_products(again)
    assert any(n.startswith("simulation/refs/") and n.endswith(".asdf") for n in names)  # ASDF refs compared too
    assert_same_products(reference_run, again)
