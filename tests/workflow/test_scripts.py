"""scripts/*.py by hand: argument parsing, one-line errors, nothing written on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUB_SITE = Path(__file__).with_name("stub_site")


def script(name: str, *args: str, cwd: Path, stub: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if stub:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STUB_SITE), env.get("PYTHONPATH")]))
        env["WEBBCAL_STUB_DETECTOR1"] = env["WEBBCAL_STUB_SIMULATE"] = "1"
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_detector1_script_passes_its_arguments(tmp_path):
    params = {"jump": {"rejection_threshold": 5.0}, "ipc": {"skip": True}}
    result = script("detector1.py", "a_uncal.fits", "--rate", "a_rate.fits", "--rateints",
                    "a_rateints.fits", "--ramp", "a_ramp.fits", "--params", json.dumps(params),
                    "--refs", "refs", cwd=tmp_path, stub=True)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "a_ramp.fits").read_text())
    assert record == {"uncal": "a_uncal.fits", "params": params, "refs_dir": "refs"}


@pytest.mark.parametrize("uncal, expected", [
    ("missing_uncal.fits", "webbcal: error: missing_uncal.fits: "),
    ("text_uncal.fits", "webbcal: error: text_uncal.fits: "),
])
def test_detector1_script_bad_input_is_one_line_and_writes_nothing(tmp_path, uncal, expected):
    pytest.importorskip("webbcal.pipeline.detector1")
    (tmp_path / "text_uncal.fits").write_text("not a FITS file")
    result = script("detector1.py", uncal, "--rate", "x_rate.fits", "--rateints", "x_rateints.fits",
                    cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert not list(tmp_path.glob("x_*"))


def test_detector1_script_rejects_bad_params_json(tmp_path):
    result = script("detector1.py", "a_uncal.fits", "--rate", "r.fits", "--rateints", "ri.fits",
                    "--params", "[1, 2]", cwd=tmp_path, stub=True)
    assert result.returncode == 2
    assert "Invalid value for '--params': expected a JSON object" in result.stderr


def test_simulate_script_passes_its_arguments(tmp_path):
    result = script("simulate.py", "sim", "--seed", "5", "--settings", '{"preset": "demo", "nints": 2}',
                    cwd=tmp_path, stub=True)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "sim" / "refs" / "manifest.json").read_text())
    assert record == {"settings": {"preset": "demo", "nints": 2}, "seed": 5}
