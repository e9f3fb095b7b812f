"""Checkpoint simulate: write the built-in NIRCam program into one directory.

Argument parsing only; the work is ``webbcal.simulate.program.simulate_program``
(with ``settings_for(preset, **options)``), which
writes ``OUTDIR/uncal/*_uncal.fits``, ``OUTDIR/refs/`` (reference cache with
manifest.json), ``OUTDIR/asn/*.json`` and ``OUTDIR/truth/``. Run by the checkpoint's
``script:`` directive or by hand:

    python scripts/simulate.py results/simulation --seed 1 --settings '{"preset": "demo"}'
"""

import json
import sys
from pathlib import Path

import click

# The checkout's webbcal, also inside a --use-conda env that holds only its dependencies.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webbcal.commands.rule_script import json_object, run_rule_script  # noqa: E402


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--settings", default="{}", callback=json_object,
              help='JSON simulator options, e.g. \'{"preset": "demo", "ngroups": 5}\'.')
def main(outdir, seed, settings):
    """Simulate a NIRCam program into OUTDIR."""
    from webbcal.simulate.program import settings_for, simulate_program

    simulate_program(outdir, settings_for(**settings), seed)


def arguments_from_rule(job) -> list[str]:
    """The command line equivalent to the Snakemake checkpoint simulate."""
    return [job.output.program, "--seed", str(job.params.seed),
            "--settings", json.dumps(job.params.settings)]


if __name__ == "__main__":
    run_rule_script(main, arguments_from_rule, globals(), "simulate.py")
