"""The stage commands run their job with the imported objects frozen, and unfreeze after."""

import gc

import pytest
from click.testing import CliRunner


@pytest.mark.parametrize("command,module,function,args", [
    ("image2", "webbcal.pipeline.image2", "run_image2", ["x_rate.fits"]),
    ("image3", "webbcal.pipeline.image3", "run_image3", ["x_asn.json"]),
    ("detector1", "webbcal.pipeline.detector1", "run_detector1", ["x_uncal.fits"]),
])
def test_job_runs_frozen_and_the_objects_are_handed_back(monkeypatch, tmp_path, command, module,
                                                         function, args):
    import importlib

    seen = []

    def fake_run(*a, **k):
        seen.append(gc.get_freeze_count())
        raise SystemExit(0)

    monkeypatch.setattr(importlib.import_module(module), function, fake_run)
    (tmp_path / args[0]).write_text("")
    gc.unfreeze()
    cli = getattr(importlib.import_module(f"webbcal.commands.{command}"), command)
    with CliRunner().isolated_filesystem(temp_dir=tmp_path):
        (tmp_path / args[0]).rename(args[0])
        CliRunner().invoke(cli, args)
    assert seen and seen[0] > 10_000  # astropy, gwcs, click... frozen during the job
    assert gc.get_freeze_count() == 0  # and given back afterwards
