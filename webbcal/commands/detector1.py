"""``webbcal detector1 UNCAL -o RATE``: run Stage 1 on one exposure."""

from __future__ import annotations

from pathlib import Path

import click

from webbcal.commands.options import override_options, stage_params_from_cli, stage_reftypes
from webbcal.pipeline.settings import resolve_stage_settings


def default_output(uncal: Path, suffix: str) -> Path:
    stem = uncal.name.removesuffix(".fits")
    for known in ("_uncal", "_ramp"):
        stem = stem.removesuffix(known)
    return uncal.with_name(f"{stem}_{suffix}.fits")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("uncal", type=click.Path(path_type=Path))
@click.option("-o", "--output", "rate", type=click.Path(path_type=Path), default=None,
              help="rate file to write [default: <root>_rate.fits next to the input].")
@click.option("--rateints", type=click.Path(path_type=Path), default=None,
              help="rateints file [default: <root>_rateints.fits next to the rate].")
@click.option("--ramp", type=click.Path(path_type=Path), default=None,
              help="Also save the calibrated ramp (input of ramp_fit) here.")
@click.option("--refs", "refs_dir", type=click.Path(path_type=Path), default=None,
              help="Reference cache directory [default: $WEBBCAL_REFS].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="YAML file with detector1 step parameters (config.yaml layout).")
@click.option("--set", "assignments", multiple=True, metavar="STEP.PARAM=VALUE",
              help="Set a step parameter, e.g. --set jump.rejection_threshold=5.")
@click.option("--skip", "skips", multiple=True, metavar="STEP", help="Skip a step.")
@click.option("--run", "runs", multiple=True, metavar="STEP",
              help="Run a step that is skipped by default (e.g. --run ipc).")
@click.pass_context
def detector1(ctx, uncal, rate, rateints, ramp, refs_dir, config_file, assignments, skips, runs,
              **overrides):
    """Calibrate UNCAL (raw ramps) into count rates: <root>_rate.fits and _rateints.fits."""
    from webbcal.pipeline.detector1 import run_detector1
    from webbcal.commands.batch import imported_objects_frozen

    reftype_overrides = {k.removeprefix("override_"): v for k, v in overrides.items()}
    params = stage_params_from_cli("detector1", config_file, assignments, skips, runs, reftype_overrides)
    # Validated here so that a bad key or value names the file it came from.
    resolve_stage_settings("detector1", params,
                           source=str(config_file) if config_file else "command line")
    rate = rate or default_output(uncal, "rate")
    rateints = rateints or rate.with_name(rate.name.replace("_rate.fits", "_rateints.fits")
                                          if rate.name.endswith("_rate.fits")
                                          else rate.stem + "_rateints.fits")
    with imported_objects_frozen():
        result = run_detector1(uncal, rate_path=rate, rateints_path=rateints, ramp_path=ramp,
                               params=params, refs_dir=refs_dir)
    click.echo(f"wrote {rate} and {rateints}" + (f" and {ramp}" if ramp else ""))
    return result


for _option in override_options(stage_reftypes("detector1")):
    detector1.params.append(_option)
