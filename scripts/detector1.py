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
@click.option("--rate", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--rateints", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--ramp", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the calibrated ramp here.")
@click.option("--params", default="{}", callback=json_object,
              help="JSON {step: {param: value, skip, override_<reftype>}}; missing ones take defaults.")
@click.option("--refs", "refs_dir", default="", help="Reference cache [default: $WEBBCAL_REFS].")
def main(uncal, rate, rateints, ramp, params, refs_dir):
    """Calibrate UNCAL into count rates (Stage 1, Detector1)."""
    from webbcal.pipeline.detector1 import run_detector1

    run_detector1(uncal, rate_path=rate, rateints_path=rateints, ramp_path=ramp,
                  params=params, refs_dir=refs_dir or None)


def arguments_from_rule(job) -> list[str]:
    """The command line equivalent to a Snakemake job of rule detector1."""
    args = [job.input.uncal, "--rate", job.output.rate, "--rateints", job.output.rateints,
            "--params", json.dumps(job.params.steps), "--refs", job.params.refs_dir]
    if "ramp" in job.output.keys():
        args += ["--ramp", job.output.ramp]
    return args


if __name__ == "__main__":
    run_rule_script(main, arguments_from_rule, globals(), "detector1.py")
