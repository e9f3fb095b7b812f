"""Rule detector1: one raw exposure -> rate, rateints (and the calibrated ramp if asked).

Argument parsing only; the work is ``webbcal.pipeline.detector1.run_detector1``.
Run by the rule's ``script:`` directive (arguments from the ``snakemake`` object, stderr
into the rule's log) or by hand:

    python scripts/detector1.py X_uncal.fits --rate X_rate.fits --rateints X_rateints.fits \
        --params '{"jump": {"rejection_threshold": 5}}' --refs refs/
"""

import json
import sys
from pathlib import Path

import click

# The checkout's webbcal, also inside a --use-conda env that holds only its dependencies.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webbcal.commands.rule_script import json_object, run_rule_script  # noqa: E402


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("uncal", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rate", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--rateints", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--ramp", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the calibrated ramp here.")
@click.option("--params", default="{}", callback=json_object,
              help="JSON {step: {param: value, skip, override_<reftype>}}; missing ones take defaults.")
@click.option("--refs", "refs_dir", default="", help="Reference cache [default: $WEBBCAL_REFS].")
def main(uncal, rate, rateints, ramp, params, refs_dir):
    """Calibrate UNCAL (or a calibrated ramp) into count rates (Stage 1, Detector1)."""
    from webbcal.pipeline.detector1 import run_detector1
    from webbcal.commands.batch import imported_objects_frozen

    if not (rate or rateints or ramp):
        raise click.UsageError("nothing to write: give --rate, --rateints and/or --ramp")
    with imported_objects_frozen():
        run_detector1(uncal, rate_path=rate, rateints_path=rateints, ramp_path=ramp,
                      params=params, refs_dir=refs_dir or None)


def arguments_from_rule(job) -> list[str]:
    """The command line equivalent to a Snakemake job of rule detector1."""
    source = job.input.uncal if "uncal" in job.input.keys() else job.input.ramp
    args = [source, "--params", json.dumps(job.params.steps), "--refs", job.params.refs_dir]
    for name in ("rate", "rateints", "ramp"):  # the ramp job makes the ramp, the fit the rates
        if name in job.output.keys():
            args += [f"--{name}", getattr(job.output, name)]
    return args


if __name__ == "__main__":
    run_rule_script(main, arguments_from_rule, globals(), "detector1.py")
