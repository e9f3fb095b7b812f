"""``webbcal preview PRODUCT -o PNG``: a small picture of a product.

rate/cal/i2d images (asinh stretch, NaNs coloured, colour bar in BUNIT), a mosaic with
its catalog's sources circled (``--catalog``), a WFSS cal's extraction boxes on the grism
image (``--background`` the exposure's rate), an x1d's spectra. Also what the workflow's
report rules run (``python -m webbcal.commands.preview``), one product per job.
"""

from __future__ import annotations

from pathlib import Path

import click

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("product", type=_FILE)
@click.option("-o", "--output", type=_FILE, required=True, help="PNG to write.")
@click.option("--catalog", type=_FILE, default=None, help="Image3 *_cat.ecsv: circle its sources.")
@click.option("--background", type=_FILE, default=None,
              help="WFSS cal only: the exposure's rate, drawn under the slit boxes.")
def preview(product, output, catalog, background):
    """Draw PRODUCT (rate, cal, i2d, WFSS cal or x1d) into the PNG OUTPUT."""
    from webbcal.preview import render_preview

    render_preview(product, output, catalog=catalog, background=background)


def main(argv=None):
    """Run as ``python -m webbcal.commands.preview`` (one-line errors, as ``webbcal``)."""
    from webbcal.cli import run_guarded

    return run_guarded(preview.main, args=argv, prog_name="webbcal preview")


if __name__ == "__main__":
    main()
