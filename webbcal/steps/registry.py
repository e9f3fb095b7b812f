"""Every step, by stage and in the official order, and what is derived from the specs.

``stage_steps("detector1")`` gives the step modules in pipeline order; each has
``SPEC`` (a ``StepSpec``). Config defaults, the config schema, click options and the
Snakemake ``params:`` are all derived from these specs (see ``webbcal.config``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from webbcal.steps.base import StepSpec

# Official NIR order of calwebb_detector1 in jwst 3.0.0 (persistence sits after jump).
STAGES: dict[str, tuple[str, ...]] = {
    "detector1": (
        "group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
        "dark_current", "charge_migration", "jump", "persistence", "ramp_fit", "gain_scale",
    ),
    # calwebb_image2 for imaging; background runs only with background members.
    "image2": ("background", "assign_wcs", "flat_field", "photom", "resample"),
    # calwebb_image3; resample is the Image2 module (one resampler, one parameter set).
    "image3": ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog"),
}


def step_module(name: str) -> ModuleType:
    for stage, names in STAGES.items():
        if name in names:
            return importlib.import_module(f"webbcal.steps.{name}")
    known = ", ".join(n for names in STAGES.values() for n in names)
    raise KeyError(f"unknown step {name!r} (known: {known})")


def stage_steps(stage: str) -> list[ModuleType]:
    return [step_module(name) for name in STAGES[stage]]


def spec(name: str) -> StepSpec:
    return step_module(name).SPEC


def all_specs() -> dict[str, dict[str, StepSpec]]:
    return {stage: {name: spec(name) for name in names} for stage, names in STAGES.items()}
