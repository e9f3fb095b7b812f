"""``webbcal image3 ASN [-o OUTDIR]``: run Stage 3 imaging on an image3 association."""

from __future__ import annotations

from pathlib import Path

import click

from webbcal.commands.options import stage_params_from_cli


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("asn", metavar="ASN", type=click.Path(path_type=Path))
@click.option("-o", "--output-dir", "output_dir", type=click.Path(path_type=Path), default=None,
              help="Directory of the products [default: the association's directory].")
@click.option("--refs", "refs_dir", type=click.Path(path_type=Path), default=None,
              help="Reference cache directory [default: $WEBBCAL_REFS].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="YAML file with image3 step parameters (config.yaml layout).")
@click.option("--set", "assignments", multiple=True, metavar="STEP.PARAM=VALUE",
              help="Set a step parameter, e.g. --set resample.pixel_scale_ratio=0.5.")
@click.option("--skip", "skips", multiple=True, metavar="STEP", help="Skip a step.")
@click.option("--run", "runs", multiple=True, metavar="STEP", help="Run a step skipped by default.")
def image3(asn, output_dir, refs_dir, config_file, assignments, skips, runs):
    """Combine the cal files of an image3 ASN into <product>_i2d.fits and <exp>_<asn_id>_crf.fits."""
    from webbcal.pipeline.image3 import run_image3
    from webbcal.commands.batch import imported_objects_frozen

    params = stage_params_from_cli("image3", config_file, assignments, skips, runs)
    with imported_objects_frozen():
        result = run_image3(asn, output_dir, params=params, refs_dir=refs_dir)
    for path in [*result.crf, result.i2d, result.catalog, result.segm]:
        if path is not None:  # no catalog when source_catalog is skipped
            click.echo(f"wrote {path}")
    return result
