"""rules/spec2.smk in the workflow DAG (a dry run on the simulated WFSS observation).

Each spec2 association becomes one spec2 job whose inputs are the grism exposure's rate
and the catalog of the direct image's image3 job, so the DAG runs direct uncal → rate →
cal → catalog and grism uncal → rate → (+ catalog) cal + x1d; imaging exposures keep
their image2 cal; skipping extract_1d drops the x1d output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline.test_spec2_support import spec2_data  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = 'include: "rules/spec2.smk"'


def _snakefile(folder: Path) -> Path:
    """The checkout's Snakefile, with rules/spec2.smk and its targets if not yet there
    (written to ``folder``, its includes pointing into the checkout)."""
    text = (ROOT / "Snakefile").read_text()
    if INCLUDE not in text:
        text = text.replace('include: "rules/image3.smk"', f'include: "rules/image3.smk"\n{INCLUDE}')
        text = re.sub(r"(rule all:\n    input:\n)", r"\1        all_spec2_files,\n", text)
    text = text.replace('include: "rules/', f'include: "{ROOT}/rules/')
    text = text.replace('configfile: "config/', f'configfile: "{ROOT}/config/')
    path = folder / "Snakefile"
    path.write_text(text)
    return path


def _dry_run(folder: Path, data, **config) -> subprocess.CompletedProcess:
    cfg = {"input_dir": str(data.root / "uncal"), "asn_dir": str(data.root / "asn"),
           "output_dir": str(folder / "out"), "refs_dir": str(data.refs), **config}
    (folder / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(_snakefile(folder)),
                           "--directory", str(folder), "-n", "--cores", "2",
                           "--configfile", str(folder / "cfg.yaml")],
                          capture_output=True, text=True, timeout=300, cwd=folder, env=env)


def _jobs(stdout: str, rule: str) -> list[str]:
    """The 'input:'/'output:' lines of every job of ``rule``."""
    return re.findall(rf"rule {rule}:\n((?:    .*\n)+)", stdout)


def test_dry_run_chains_the_direct_image_catalog_into_spec2(spec2_data, tmp_path):
    result = _dry_run(tmp_path, spec2_data)
    assert result.returncode == 0, result.stderr[-2000:]
    (job,) = _jobs(result.stdout, "spec2")
    grism = spec2_data.grism
    out = tmp_path / "out"
    assert f"{out}/{grism}_rate.fits" in job
    assert f"{out}/{spec2_data.catalog.name}" in job  # made by the catalog job from the mosaic
    assert f"output: {out}/{grism}_cal.fits, {out}/{grism}_x1d.fits" in job
    assert "webbcal_nircam_bkg_nrcalong_f444w_grismr.fits" in job  # references are inputs
    catalogs = _jobs(result.stdout, "source_catalog")
    assert any(f"{out}/{spec2_data.catalog.name}" in j for j in catalogs)
    assert _jobs(result.stdout, "image3")
    image2 = _jobs(result.stdout, "image2")
    assert image2 and not any(f"{grism}_cal.fits" in j for j in image2)


@pytest.mark.slow
def test_skipping_extract_1d_drops_the_x1d(spec2_data, tmp_path):
    result = _dry_run(tmp_path, spec2_data, spec2={"steps": {"extract_1d": {"skip": True}}})
    assert result.returncode == 0, result.stderr[-2000:]
    (job,) = _jobs(result.stdout, "spec2")
    assert "_x1d.fits" not in job
