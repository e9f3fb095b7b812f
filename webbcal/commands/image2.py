"""``webbcal image2 RATE|ASN -o CAL``: run Stage 2 imaging on one exposure or an association."""

from __future__ import annotations

from pathlib import Path

import click

from webbcal.commands.options import override_options, stage_params_from_cli, stage_reftypes


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="RATE|ASN", type=click.Path(path_type=Path))
@click.option("-o", "--output", "cal", type=click.Path(path_type=Path), default=None,
              help="cal file to write [default: <product>_cal.fits next to the rate].")
@click.option("--i2d", type=click.Path(path_type=Path), default=None,
              help="single-exposure resampled image [default: <product>_i2d.fits next to the cal].")
@click.option("--refs", "refs_dir", type=click.Path(path_type=Path), default=None,
              help="Reference cache directory [default: $WEBBCAL_REFS].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="YAML file with image2 step parameters (config.yaml layout).")
@click.option("--set", "assignments", multiple=True, metavar="STEP.PARAM=VALUE",
              help="Set a step parameter, e.g. --set resample.pixfrac=0.8.")
@click.option("--skip", "skips", multiple=True, metavar="STEP", help="Skip a step.")
@click.option("--run", "runs", multiple=True, metavar="STEP", help="Run a step skipped by default.")
def image2(source, cal, i2d, refs_dir, config_file, assignments, skips, runs, **overrides):
    """Calibrate RATE (or every product of an image2 ASN) into <root>_cal.fits and _i2d.fits."""
    from webbcal.pipeline.image2 import run_image2
    from webbcal.commands.batch import imported_objects_frozen

    reftype_overrides = {k.removeprefix("override_"): v for k, v in overrides.items()}
    params = stage_params_from_cli("image2", config_file, assignments, skips, runs, reftype_overrides)
    if cal is not None and i2d is None:
        stem = cal.name.removesuffix(".fits").removesuffix("_cal")
        i2d = cal.with_name(f"{stem}_i2d.fits")
    with imported_objects_frozen():
        results = run_image2(source, cal_path=cal, i2d_path=i2d, params=params, refs_dir=refs_dir)
    for result in results:
        written = [str(result.cal.path)] + ([str(result.i2d.path)] if result.i2d is not None else [])
        click.echo("wrote " + " and ".join(written))
    return results


for _option in override_options(stage_reftypes("image2")):
    image2.params.append(_option)
