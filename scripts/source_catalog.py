"""Rule source_catalog: a mosaic (i2d) -> its source catalog and segmentation map.

Argument parsing only; the work is ``webbcal.pipeline.image3.run_source_catalog``.
Run by the rule's ``script:`` directive (arguments from the ``snakemake`` object, stderr
into the rule's log) or by hand:

    python scripts/source_catalog.py X_i2d.fits --cat X_cat.ecsv --segm X_segm.fits \
        --params '{"source_catalog": {"snr_threshold": 5}}' --refs refs/
"""

import json
import sys
from pathlib import Path

import click

# The checkout's webbcal, also inside a --use-conda env that holds only its dependencies.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webbcal.commands.rule_script import json_object, run_rule_script  # noqa: E402


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("i2d", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cat", "cat_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Catalog to write [default: <product>_cat.ecsv beside the mosaic].")
@click.option("--segm", "segm_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Segmentation map to write [default: <product>_segm.fits beside the mosaic].")
@click.option("--params", default="{}", callback=json_object,
              help='JSON {"source_catalog": {param: value, override_<reftype>}}; missing ones take defaults.')
@click.option("--refs", "refs_dir", default="", help="Reference cache [default: $WEBBCAL_REFS].")
def main(i2d, cat_path, segm_path, params, refs_dir):
    """Detect and measure the sources of a mosaic (Image3's source_catalog step alone)."""
    from webbcal.pipeline.image3 import run_source_catalog
    from webbcal.commands.batch import imported_objects_frozen

    with imported_objects_frozen():
        run_source_catalog(i2d, cat_path=cat_path, segm_path=segm_path, params=params, refs_dir=refs_dir or None)


def arguments_from_rule(job) -> list[str]:
    """The command line equivalent to a Snakemake job of rule source_catalog."""
    return [job.input.i2d, "--cat", job.output.cat, "--segm", job.output.segm,
            "--params", json.dumps(job.params.steps), "--refs", job.params.refs_dir]


if __name__ == "__main__":
    run_rule_script(main, arguments_from_rule, globals(), "source_catalog.py")
