"""``webbcal spec2 ASN|RATE``: run Stage 2 WFSS spectroscopy on a grism exposure."""

from __future__ import annotations

from pathlib import Path

import click

from webbcal.commands.options import override_options, stage_params_from_cli, stage_reftypes


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="ASN|RATE", type=click.Path(path_type=Path))
@click.option("-o", "--output", "cal", type=click.Path(path_type=Path), default=None,
              help="cal file to write [default: <product>_cal.fits next to the rate].")
@click.option("--x1d", type=click.Path(path_type=Path), default=None,
              help="1-D spectra to write [default: <product>_x1d.fits next to the cal].")
@click.option("--catalog", type=click.Path(path_type=Path), default=None,
              help="Direct-image source catalog (*_cat.ecsv) [default: the association's "
                   "sourcecat member, or the rate's SCATFILE].")
@click.option("--refs", "refs_dir", type=click.Path(path_type=Path), default=None,
              help="Reference cache directory [default: $WEBBCAL_REFS].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="YAML file with spec2 step parameters (config.yaml layout).")
@click.option("--set", "assignments", multiple=True, metavar="STEP.PARAM=VALUE",
              help="Set a step parameter, e.g. --set extract_2d.wfss_nbright=50.")
@click.option("--skip", "skips", multiple=True, metavar="STEP", help="Skip a step.")
@click.option("--run", "runs", multiple=True, metavar="STEP", help="Run a step skipped by default.")
def spec2(source, cal, x1d, catalog, refs_dir, config_file, assignments, skips, runs, **overrides):
    """Calibrate a WFSS grism RATE (or every product of a spec2 ASN) into cal and x1d."""
    from webbcal.pipeline.spec2 import run_spec2
    from webbcal.commands.batch import imported_objects_frozen

    reftype_overrides = {k.removeprefix("override_"): v for k, v in overrides.items()}
    params = stage_params_from_cli("spec2", config_file, assignments, skips, runs, reftype_overrides)
    if cal is not None and x1d is None:
        stem = cal.name.removesuffix(".fits").removesuffix("_cal")
        x1d = cal.with_name(f"{stem}_x1d.fits")
    with imported_objects_frozen():
        results = run_spec2(source, cal_path=cal, x1d_path=x1d, params=params, refs_dir=refs_dir,
                            catalog=catalog)
    for result in results:
        written = [str(result.cal.path)] + ([str(result.x1d.path)] if result.x1d is not None else [])
        click.echo("wrote " + " and ".join(written))
    return results


for _option in override_options(stage_reftypes("spec2")):
    spec2.params.append(_option)
