"""Per-step settings of a stage run: parameters, skip switches, reference overrides.

A stage takes ``{step: {param: value, "skip": bool, "override_<reftype>": path}}``
(the shape of ``config.yaml``'s ``<stage>.steps``); this module splits that into what
each step needs and validates every key against the step's ``SPEC``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webbcal.errors import WebbcalError
from webbcal.steps import registry


@dataclass
class StepSettings:
    name: str
    skip: bool
    params: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``"jump.rejection_threshold=5"`` -> ("jump", "rejection_threshold", "5")."""
    key, sep, value = text.partition("=")
    step, dot, param = key.strip().partition(".")
    if not sep or not dot or not step or not param:
        raise WebbcalError(None, f"--set expects STEP.PARAM=VALUE, got {text!r}")
    return step, param, value.strip()


def resolve_stage_settings(stage: str, given: dict[str, dict] | None,
                           *, source: str = "parameters") -> dict[str, StepSettings]:
    """Validate ``given`` against the stage's step specs; fill in defaults."""
    given = dict(given or {})
    names = registry.STAGES[stage]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise WebbcalError(source, f"unknown {stage} step {unknown[0]!r} (known: {', '.join(names)})")
    settings = {}
    for name in names:
        spec = registry.stage_spec(stage, name)
        values = dict(given.get(name) or {})
        skip = values.pop("skip", spec.skip)
        overrides = {}
        for reftype in spec.reftypes:
            path = values.pop(f"override_{reftype}", None)
            if path:
                overrides[reftype] = str(path)
        try:
            params = spec.resolve(values)
            skip = spec_bool(skip)
        except ValueError as exc:
            raise WebbcalError(source, f"{stage}.{name}: {exc}") from None
        settings[name] = StepSettings(name, skip, params, overrides)
    return settings


def spec_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ValueError(f"skip expects true/false, got {value!r}")
