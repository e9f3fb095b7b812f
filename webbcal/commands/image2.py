"""``webbcal image2 RATE|ASN -o CAL``: run Stage 2 imaging on one exposure or an association."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from webbcal.commands.options import override_options
from webbcal.errors import WebbcalError
from webbcal.pipeline.settings import parse_assignment


def _modules():
    from webbcal.pipeline.image2 import stage_modules

    return stage_modules()


def _all_reftypes() -> list[str]:
    seen = []
    for module in _modules():
        seen += [r for r in module.SPEC.reftypes if r not in seen]
    return seen


def build_params(config_file, assignments, skips, runs, overrides) -> dict:
    params: dict[str, dict] = {}
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise WebbcalError(config_file, f"cannot read configuration: {exc}") from None
        stage = loaded.get("image2", loaded)
        steps = stage.get("steps", stage) if isinstance(stage, dict) else None
        if not isinstance(steps, dict):
            raise WebbcalError(config_file, "expected a mapping of image2 steps")
        params = {k: dict(v or {}) for k, v in steps.items()}
    for text in assignments:
        step, param, value = parse_assignment(text)
        params.setdefault(step, {})[param] = value
    for step in skips:
        params.setdefault(step, {})["skip"] = True
    for step in runs:
        params.setdefault(step, {})["skip"] = False
    for reftype, path in overrides.items():
        if path:
            for module in _modules():
                if reftype in module.SPEC.reftypes:
                    params.setdefault(module.SPEC.name, {})[f"override_{reftype}"] = path
    return params


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="RATE|ASN", type=click.Path(path_type=Path))
@click.option("-o", "--output", "cal", type=click.Path(path_type=Path), default=None,
              help="cal file to write [default: <product>_cal.fits next to the rate].")
@click.option("--i2d", type=click.Path(path_type=Path), default=None,
              help="single-exposure resampled image [default: <product>_i2d.fits next to the cal].")
@click.option("--refs", "refs_dir", type=click.Path(path_type=Path), default=None,
              help="Reference cache directory [default: $WEBBCAL_REFS].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="YAML file with image2 step parameters (config.yaml layout).")
@click.option("--set", "assignments", multiple=True, metavar="STEP.PARAM=VALUE",
              help="Set a step parameter, e.g. --set resample.pixfrac=0.8.")
@click.option("--skip", "skips", multiple=True, metavar="STEP", help="Skip a step.")
@click.option("--run", "runs", multiple=True, metavar="STEP", help="Run a step skipped by default.")
def image2(source, cal, i2d, refs_dir, config_file, assignments, skips, runs, **overrides):
    """Calibrate RATE (or every product of an image2 ASN) into <root>_cal.fits and _i2d.fits."""
    from webbcal.pipeline.image2 import run_image2

    reftype_overrides = {k.removeprefix("override_"): v for k, v in overrides.items()}
    params = build_params(config_file, assignments, skips, runs, reftype_overrides)
    if cal is not None and i2d is None:
        stem = cal.name.removesuffix(".fits").removesuffix("_cal")
        i2d = cal.with_name(f"{stem}_i2d.fits")
    results = run_image2(source, cal_path=cal, i2d_path=i2d, params=params, refs_dir=refs_dir)
    for result in results:
        written = [str(result.cal.path)] + ([str(result.i2d.path)] if result.i2d is not None else [])
        click.echo("wrote " + " and ".join(written))
    return results


for _option in override_options(_all_reftypes()):
    image2.params.append(_option)
