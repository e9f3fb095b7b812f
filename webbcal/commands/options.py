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
    return [click.Option([f"--override-{r}", f"--override_{r}"], f"override_{r}",
                         type=click.Path(), default=None,
                         help=f"Use this {r.upper()} reference file instead of the cache's choice "
                              "('N/A' skips the step).")
            for r in reftypes]


def step_options(spec: StepSpec) -> list[click.Option]:
    return [param_option(p) for p in spec.params] + override_options(spec.reftypes)
