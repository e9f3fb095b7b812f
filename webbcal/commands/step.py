"""``webbcal step NAME INPUT -o OUTPUT``: run one step alone, as ``strun`` does.

Each step is a sub-command whose options are derived from its ``SPEC``; a step run
alone always runs (its default ``skip`` does not apply), like a stand-alone stpipe step.
"""

from __future__ import annotations

from pathlib import Path

import click

from webbcal.commands.options import step_options
from webbcal.steps import registry


def _make_command(name: str) -> click.Command:
    spec = registry.spec(name)

    def callback(input_path, output, refs_dir, rateints, **values):
        from webbcal.pipeline.single_step import run_single_step

        params = {k: v for k, v in values.items() if v is not None}
        written = run_single_step(name, input_path, output, params=params, refs_dir=refs_dir,
                                  rateints_path=rateints)
        click.echo("wrote " + " and ".join(str(p) for p in written))

    params = [
        click.Argument(["input_path"], type=click.Path(path_type=Path)),
        click.Option(["-o", "--output"], type=click.Path(path_type=Path), default=None,
                     help=f"Output file [default: <root>_{name}.fits]."),
        click.Option(["--refs", "refs_dir"], type=click.Path(path_type=Path), default=None,
                     help="Reference cache directory [default: $WEBBCAL_REFS]."),
        click.Option(["--rateints"], type=click.Path(path_type=Path), default=None,
                     help="(ramp_fit) also write the per-integration rates here."),
    ] + step_options(spec)
    doc = (spec.doc or (registry.step_module(name).__doc__ or "").strip().splitlines()[0:1] or [""])
    help_text = spec.doc if isinstance(doc, str) else doc[0]
    return click.Command(name, params=params, callback=callback, help=help_text,
                         context_settings={"help_option_names": ["-h", "--help"]})


class StepGroup(click.Group):
    def list_commands(self, ctx):
        return [n for names in registry.STAGES.values() for n in names]

    def get_command(self, ctx, name):
        try:
            return _make_command(name)
        except KeyError:
            return None


@click.group(cls=StepGroup, context_settings={"help_option_names": ["-h", "--help"]})
def step():
    """Run one calibration step alone: webbcal step NAME INPUT -o OUTPUT [--param value ...]."""
