"""The ``webbcal simulate`` command: options reach the simulation, errors are one line."""

import json

from click.testing import CliRunner

from webbcal.cli import cli


def test_simulate_command_small_run(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(cli, ["simulate", str(out), "--subarray", "SUB64P", "--readpatt", "RAPID",
                                      "--ngroups", "2", "--ndither", "1", "--nsources", "5", "--seed", "3",
                                      "--no-references"])
    assert result.exit_code == 0, result.output
    assert "1 exposures" in result.output
    settings = json.loads((out / "truth" / "settings.json").read_text())
    assert settings["subarray"] == "SUB64P" and settings["ngroups"] == 2 and settings["seed"] == 3
    assert len(list((out / "uncal").glob("*_uncal.fits"))) == 1
    assert not list((out / "refs").glob("*.fits"))


def test_simulate_command_rejects_bad_combinations(tmp_path):
    result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "x"), "--detector", "NRCA1",
                                      "--filter", "F444W"])
    assert result.exit_code == 2
    assert "F444W is not a filter of the SHORT-wave detector NRCA1" in result.output
    result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "x"), "--readpatt", "DEEP8",
                                      "--ngroups", "25"])
    assert result.exit_code == 2 and "DEEP8 allows 1..20" in result.output
