"""Rule spec2: one WFSS spec2 association (grism rate + direct-image catalog) -> cal and x1d.

Argument parsing only; the work is ``webbcal.pipeline.spec2.run_spec2``.
Run by the rule's ``script:`` directive (arguments from the ``snakemake`` object, stderr
into the rule's log) or by hand:

    python scripts/spec2.py ASN.json --members-dir results --cal X_cal.fits --x1d X_x1d.fits \
        --params '{"extract_2d": {"wfss_nbright": 50}}' --refs refs/
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
@click.option("--members-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the rate and catalog members are [default: next to the association].")
@click.option("--cal", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--x1d", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="1-D spectra [default: none unless extract_1d runs: <cal stem>_x1d.fits].")
@click.option("--params", default="{}", callback=json_object,
              help="JSON {step: {param: value, skip, override_<reftype>}}; missing ones take defaults.")
@click.option("--refs", "refs_dir", default="", help="Reference cache [default: $WEBBCAL_REFS].")
def main(asn, members_dir, cal, x1d, params, refs_dir):
    """Calibrate the grism exposure of ASN into cal cut-outs and x1d spectra (Stage 2, Spec2)."""
    from webbcal.pipeline.spec2 import run_spec2
    from webbcal.commands.batch import imported_objects_frozen

    if x1d is None:
        x1d = cal.with_name(cal.name.removesuffix(".fits").removesuffix("_cal") + "_x1d.fits")
    with imported_objects_frozen():
        run_spec2(asn, cal_path=cal, x1d_path=x1d, params=params, refs_dir=refs_dir or None,
                  members_dir=members_dir)


def arguments_from_rule(job) -> list[str]:
    """The command line equivalent to a Snakemake job of rule spec2."""
    args = [job.input.asn, "--members-dir", str(Path(job.input.rate).parent), "--cal", job.output.cal,
            "--params", json.dumps(job.params.steps), "--refs", job.params.refs_dir]
    if "x1d" in job.output.keys():
        args += ["--x1d", job.output.x1d]
    return args


if __name__ == "__main__":
    run_rule_script(main, arguments_from_rule, globals(), "spec2.py")
