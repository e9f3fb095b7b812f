"""Rule image3: one image3 association's cal files -> mosaic, catalog, segmentation map.

Argument parsing only; the work is ``webbcal.pipeline.image3.run_image3``.
Run by the rule's ``script:`` directive (arguments from the ``snakemake`` object, stderr
into the rule's log) or by hand:

    python scripts/image3.py ASN.json --output-dir results --members-dir results \
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
@click.argument("asn", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--members-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the members' cal files are [default: next to the association].")
@click.option("--params", default="{}", callback=json_object,
              help="JSON {step: {param: value, skip, override_<reftype>}}; missing ones take defaults.")
@click.option("--refs", "refs_dir", default="", help="Reference cache [default: $WEBBCAL_REFS].")
@click.option("--crf-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of the crf files [default: --output-dir].")
def main(asn, output_dir, members_dir, params, refs_dir, crf_dir):
    """Combine the cal files of ASN into a mosaic and its source catalog (Stage 3, Image3)."""
    from webbcal.pipeline.image3 import run_image3
    from webbcal.commands.batch import imported_objects_frozen

    with imported_objects_frozen():
        run_image3(asn, output_dir, params=params, refs_dir=refs_dir or None, members_dir=members_dir,
                   crf_dir=crf_dir)


def arguments_from_rule(job) -> list[str]:
    """The command line equivalent to a Snakemake job of rule image3."""
    output_dir = str(Path(job.output.i2d).parent)
    return [job.input.asn, "--output-dir", output_dir, "--members-dir", output_dir,
            "--params", json.dumps(job.params.steps), "--refs", job.params.refs_dir,
            "--crf-dir", job.output.crf]


if __name__ == "__main__":
    run_rule_script(main, arguments_from_rule, globals(), "image3.py")
