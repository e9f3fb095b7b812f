"""Rule image2: one exposure's rate -> cal and the single-exposure i2d.

Argument parsing only; the work is ``webbcal.pipeline.image2.run_image2``.
Run by the rule's ``script:`` directive (arguments from the ``snakemake`` object, stderr
into the rule's log) or by hand:

    python scripts/image2.py X_rate.fits --cal X_cal.fits --i2d X_i2d.fits \
        --params '{"resample": {"pixfrac": 0.8}}' --refs refs/
"""

import json
import sys
from pathlib import Path

import click

# The checkout's webbcal, also inside a --use-conda env that holds only its dependencies.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webbcal.commands.rule_script import json_object, run_rule_script  # noqa: E402


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("rate", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cal", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--i2d", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--params", default="{}", callback=json_object,
              help="JSON {step: {param: value, skip, override_<reftype>}}; missing ones take defaults.")
@click.option("--refs", "refs_dir", default="", help="Reference cache [default: $WEBBCAL_REFS].")
def main(rate, cal, i2d, params, refs_dir):
    """Calibrate RATE into a cal image and its resampled i2d (Stage 2, Image2)."""
    from webbcal.pipeline.image2 import run_image2
    from webbcal.commands.batch import imported_objects_frozen

    with imported_objects_frozen():
        run_image2(rate, cal_path=cal, i2d_path=i2d, params=params, refs_dir=refs_dir or None)


def arguments_from_rule(job) -> list[str]:
    """The command line equivalent to a Snakemake job of rule image2."""
    return [job.input.rate, "--cal", job.output.cal, "--i2d", job.output.i2d,
            "--params", json.dumps(job.params.steps), "--refs", job.params.refs_dir]


if __name__ == "__main__":
    run_rule_script(main, arguments_from_rule, globals(), "image2.py")
