"""What a step is: one declaration of its parameters and reference types.

Every step module in ``webbcal.steps`` defines ``SPEC = StepSpec(...)`` and a pure
array function. Everything else (the click options of ``webbcal step NAME``, the keys
and defaults of ``config/config.yaml``, the config schema and its documentation, the
``params:`` of the Snakemake rules) is derived from ``SPEC`` by ``webbcal.steps.registry``,
so a parameter added here appears everywhere without a second edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Python type -> JSON-schema type name, for the config schema.
_SCHEMA_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


@dataclass(frozen=True)
class Param:
    """One step parameter: name, type, default and a one-line help text.

    ``nullable`` parameters accept ``None`` (YAML ``null``), e.g. optional file paths.
    ``choices`` restricts string values.
    """

    name: str
    type: type
    default: Any
    help: str
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None

    def coerce(self, value: Any) -> Any:
        """Convert a value from the command line or config to the declared type."""
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if self.nullable:
                return None
            raise ValueError(f"{self.name} may not be null")
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise ValueError(f"{self.name} expects true/false, got {value!r}")
        if self.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{self.name} expects an integer, got {value!r}")
        if self.type in (int, float) and isinstance(value, bool):
            raise ValueError(f"{self.name} expects a number, got {value!r}")
        try:
            result = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} expects {self.type.__name__}, got {value!r}") from None
        if self.choices and result not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.minimum is not None and result < self.minimum:
            raise ValueError(f"{self.name} must be >= {self.minimum}, got {value!r}")
        return result

    def json_schema(self) -> dict:
        kind = _SCHEMA_TYPES[self.type]
        schema: dict[str, Any] = {"type": [kind, "null"] if self.nullable else kind,
                                  "default": self.default, "description": self.help}
        if self.choices:
            schema["enum"] = list(self.choices) + ([None] if self.nullable else [])
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        return schema


@dataclass(frozen=True)
class StepSpec:
    """Declaration of a calibration step.

    name        -- alias used in config, CLI and Snakemake (``saturation``)
    stage       -- ``detector1``, ``image2``, ``image3`` or ``spec2``
    status_key  -- FITS keyword of its status (``S_SATURA``)
    reftypes    -- lower-case reference types it reads (``("saturation", "superbias")``)
    optional_reftypes -- those among ``reftypes`` it can do without (an ``N/A``
                   override drops them instead of skipping the step)
    params      -- its parameters, in the official step's order
    skip        -- skipped by default (as the official pipeline does for NIRCam)
    """

    name: str
    stage: str
    status_key: str
    reftypes: tuple[str, ...] = ()
    optional_reftypes: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    skip: bool = False
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def resolve(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with ``overrides`` (validated and coerced)."""
        values = self.defaults()
        for key, value in (overrides or {}).items():
            try:
                values[key] = self.param(key).coerce(value)
            except KeyError:
                known = ", ".join(p.name for p in self.params) or "none"
                raise ValueError(f"step {self.name} has no parameter {key!r} (known: {known})") from None
        return values
