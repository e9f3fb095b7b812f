"""Rule image2: one exposure's rate -> cal and the single-exposure i2d.

Argument parsing only; the work is ``webbcal.pipeline.image2.run_image2``.
Run by the rule's ``script:`` directive (arguments from the ``snakemake`` object, stderr
into the rule's log) or by hand:

    python scripts/image2.py X_rate.fits --cal X_cal.fits --i2d X_i2d.fits \
        --params '{"resample": {"pixfrac": 0.8}}' --refs refs/
"""

import contextlib
import json
import logging
import sys
from pathlib import Path

import click

# The checkout's webbcal, also inside a --use-conda env that holds only its dependencies.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webbcal.cli import run_guarded  # noqa: E402


def parse_json(ctx, param, value):
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("expected a JSON object {step: {param: value}}")
    return parsed


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("rate", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cal", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--i2d", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--params", default="{}", callback=parse_json,
              help="JSON {step: {param: value, skip, override_<reftype>}}; missing ones take defaults.")
@click.option("--refs", "refs_dir", default="", help="Reference cache [default: $WEBBCAL_REFS].")
def main(rate, cal, i2d, params, refs_dir):
    """Calibrate RATE into a cal image and its resampled i2d (Stage 2, Image2)."""
    from webbcal.pipeline.image2 import run_image2

    run_image2(rate, cal_path=cal, i2d_path=i2d, params=params, refs_dir=refs_dir or None)


def arguments_from_rule(job) -> list[str]:
    """The command line equivalent to a Snakemake job of rule image2."""
    return [job.input.rate, "--cal", job.output.cal, "--i2d", job.output.i2d,
            "--params", json.dumps(job.params.steps), "--refs", job.params.refs_dir]


def run(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    run_guarded(main.main, args=argv, prog_name="image2.py")


if __name__ == "__main__":
    if "snakemake" in globals():  # run by the rule's script: directive
        with open(snakemake.log[0], "w") as log, contextlib.redirect_stderr(log):  # noqa: F821
            run(arguments_from_rule(snakemake))  # noqa: F821
    else:
        run()
