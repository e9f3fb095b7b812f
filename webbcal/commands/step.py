"""``webbcal step NAME INPUT -o OUTPUT``: run one step alone, as ``strun`` does.

Each step is a sub-command whose options are derived from its ``SPEC``; a step run
alone always runs (its default ``skip`` does not apply), like a stand-alone stpipe step.

Names that several stages use (assign_wcs, flat_field, photom: Image2 and Spec2) take the
stage from the input's EXP_TYPE (a grism exposure → spec2), or from a qualified name
(``webbcal step spec2.flat_field``).
"""

from __future__ import annotations

from pathlib import Path

import click

from webbcal.commands.options import step_options
from webbcal.errors import WebbcalError
from webbcal.steps import registry

# EXP_TYPEs whose steps are the Spec2 ones.
SPEC2_EXP_TYPES = ("NRC_WFSS",)


def stage_for_input(name: str, input_path: Path) -> str:
    """The stage whose step ``name`` (bare or qualified) runs on ``input_path``."""
    stage, bare = registry.split_name(name)
    if stage is not None:
        return stage
    stages = registry.stages_of(bare)
    if len(stages) == 1:
        return stages[0]
    from astropy.io import fits

    try:
        exp_type = str(fits.getval(input_path, "EXP_TYPE", 0)).upper()
    except (OSError, KeyError):
        exp_type = ""
    return "spec2" if exp_type in SPEC2_EXP_TYPES and "spec2" in stages else stages[0]


def _run(name: str, input_path: Path, output, refs_dir, rateints, catalog, params) -> list[Path]:
    stage = stage_for_input(name, input_path)
    _, bare = registry.split_name(name)
    spec = registry.stage_spec(stage, bare)
    unknown = sorted(set(params) - {p.name for p in spec.params} - {f"override_{r}" for r in spec.reftypes})
    if unknown:
        raise WebbcalError(None, f"{stage}.{bare} has no parameter {unknown[0]!r}")
    if stage == "spec2":
        from webbcal.pipeline.spec2 import run_spec2_step

        return [run_spec2_step(bare, input_path, output, params=params, refs_dir=refs_dir,
                               catalog=catalog)]
    if stage == "image2":
        from webbcal.pipeline.image2 import run_image2_step

        return [run_image2_step(bare, input_path, output, params=params, refs_dir=refs_dir)]
    from webbcal.pipeline.single_step import run_single_step

    return run_single_step(bare, input_path, output, params=params, refs_dir=refs_dir,
                           rateints_path=rateints)


def _specs_named(name: str) -> list:
    """The specs a sub-command may run: one for a qualified or unique name, else each stage's."""
    stage, bare = registry.split_name(name)
    if stage is not None:
        return [registry.stage_spec(stage, bare)]
    stages = registry.stages_of(bare)
    if not stages:
        raise KeyError(name)
    return [registry.stage_spec(s, bare) for s in stages]


def _make_command(name: str) -> click.Command:
    specs = _specs_named(name)

    def callback(input_path, output, refs_dir, rateints, catalog, **values):
        params = {k: v for k, v in values.items() if v is not None}
        written = _run(name, input_path, output, refs_dir, rateints, catalog, params)
        click.echo("wrote " + " and ".join(str(p) for p in written))

    options, seen = [], set()
    for spec in specs:  # the union: each stage's parameters once
        for option in step_options(spec):
            if option.name not in seen:
                seen.add(option.name)
                options.append(option)
    params = [
        click.Argument(["input_path"], type=click.Path(path_type=Path)),
        click.Option(["-o", "--output"], type=click.Path(path_type=Path), default=None,
                     help=f"Output file [default: <root>_{name}.fits]."),
        click.Option(["--refs", "refs_dir"], type=click.Path(path_type=Path), default=None,
                     help="Reference cache directory [default: $WEBBCAL_REFS]."),
        click.Option(["--rateints"], type=click.Path(path_type=Path), default=None,
                     help="(ramp_fit) also write the per-integration rates here."),
        click.Option(["--catalog"], type=click.Path(path_type=Path), default=None,
                     help="(spec2 bkg_subtract) direct-image source catalog whose sources are masked."),
    ] + options
    spec = specs[0]
    module = registry.step_module(registry.qualified(spec.stage, spec.name))
    help_text = spec.doc or ((module.__doc__ or "").strip().splitlines() or [""])[0]
    return click.Command(name, params=params, callback=callback, help=help_text,
                         context_settings={"help_option_names": ["-h", "--help"]})


class StepGroup(click.Group):
    def list_commands(self, ctx):
        names = list(dict.fromkeys(n for names in registry.STAGES.values() for n in names))
        qualified = [f"spec2.{n}" for n in registry.STAGES.get("spec2", ())
                     if len(registry.stages_of(n)) > 1]
        return names + qualified

    def get_command(self, ctx, name):
        try:
            return _make_command(name)
        except KeyError:
            return None


@click.group(cls=StepGroup, context_settings={"help_option_names": ["-h", "--help"]})
def step():
    """Run one calibration step alone: webbcal step NAME INPUT -o OUTPUT [--param value ...]."""
