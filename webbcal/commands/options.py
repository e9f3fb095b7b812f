"""Click options derived from step declarations (one declaration per parameter)."""

from __future__ import annotations

import click

from webbcal.steps.base import Param, StepSpec

_CLICK_TYPES = {bool: click.BOOL, int: click.INT, float: click.FLOAT, str: click.STRING}


def param_option(param: Param, *, prefix: str = "") -> click.Option:
    """``--name`` (and ``--name_with_underscores`` as strun spells it) for a Param."""
    dashed = f"--{prefix}{param.name.replace('_', '-')}"
    names = [dashed]
    if "_" in param.name:
        names.append(f"--{prefix}{param.name}")
    kind = click.Choice(param.choices) if param.choices else _CLICK_TYPES[param.type]
    return click.Option(names + [param.name], type=kind, default=None, show_default=False,
                        help=f"{param.help} [default: {param.default}]")


def override_options(reftypes) -> list[click.Option]:
    # the destination name goes in the declarations (click's 2nd positional is show_default)
    return [click.Option([f"--override-{r}", f"--override_{r}", f"override_{r}"],
                         type=click.Path(), default=None,
                         help=f"Use this {r.upper()} reference file instead of the cache's choice "
                              "('N/A' skips the step).")
            for r in reftypes]


def step_options(spec: StepSpec) -> list[click.Option]:
    return [param_option(p) for p in spec.params] + override_options(spec.reftypes)


def stage_reftypes(stage: str) -> list[str]:
    """Every reference type the stage's steps read, in step order (for --override-*)."""
    from webbcal.steps import registry

    seen: list[str] = []
    for module in registry.stage_steps(stage):
        seen += [r for r in module.SPEC.reftypes if r not in seen]
    return seen


def stage_params_from_cli(stage: str, config_file, assignments=(), skips=(), runs=(),
                          overrides: dict | None = None) -> dict:
    """``{step: {param: value, skip, override_<reftype>}}`` from a stage command's options.

    ``config_file`` may hold a whole config.yaml (its ``<stage>.steps`` is used) or just
    the steps mapping; ``--set``, ``--skip``, ``--run`` and ``--override-<reftype>`` win.
    """
    from pathlib import Path

    import yaml

    from webbcal.errors import WebbcalError
    from webbcal.pipeline.settings import parse_assignment
    from webbcal.steps import registry

    params: dict[str, dict] = {}
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise WebbcalError(config_file, f"cannot read configuration: {exc}") from None
        section = loaded.get(stage, loaded) if isinstance(loaded, dict) else None
        steps = section.get("steps", section) if isinstance(section, dict) else None
        if not isinstance(steps, dict):
            raise WebbcalError(config_file, f"expected a mapping of {stage} steps")
        params = {k: dict(v or {}) for k, v in steps.items()}
    for text in assignments:
        step, param, value = parse_assignment(text)
        params.setdefault(step, {})[param] = value
    for step in skips:
        params.setdefault(step, {})["skip"] = True
    for step in runs:
        params.setdefault(step, {})["skip"] = False
    for reftype, path in (overrides or {}).items():
        if path:
            for module in registry.stage_steps(stage):
                if reftype in module.SPEC.reftypes:
                    params.setdefault(module.SPEC.name, {})[f"override_{reftype}"] = path
    return params
