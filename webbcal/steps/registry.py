"""Every step, by stage and in the official order, and what is derived from the specs.

``stage_steps("detector1")`` gives the step modules in pipeline order; each has
``SPEC`` (a ``StepSpec``). Config defaults, the config schema, click options and the
Snakemake ``params:`` are all derived from these specs (see ``webbcal.config``).

Step names repeat across stages (Spec2 has its own assign_wcs, flat_field and photom, in
``webbcal.steps.wfss``). A name can be qualified by its stage, ``"spec2.assign_wcs"``;
a bare name means the first stage that has it (``assign_wcs`` is Image2's), so every
caller that knew only one stage per name keeps working. ``stage_spec(stage, name)`` is
the unambiguous lookup.
"""

from __future__ import annotations

import dataclasses
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
    # calwebb_spec2 for NRC_WFSS (wfss_contam, pixel_replace etc. are skipped officially).
    "spec2": ("assign_wcs", "bkg_subtract", "flat_field", "extract_2d", "srctype", "photom",
              "extract_1d"),
}

# Stages whose steps live in their own package (same names, other algorithms).
STAGE_PACKAGES = {"spec2": "webbcal.steps.wfss"}
DEFAULT_PACKAGE = "webbcal.steps"


def split_name(name: str) -> tuple[str | None, str]:
    """``"spec2.assign_wcs"`` -> ("spec2", "assign_wcs"); a bare name -> (None, name)."""
    stage, dot, bare = name.partition(".")
    return (stage, bare) if dot else (None, name)


def qualified(stage: str, name: str) -> str:
    """The name that finds ``name`` of ``stage`` through :func:`step_module`."""
    return f"{stage}.{name}" if stage in STAGE_PACKAGES else name


def stages_of(name: str) -> list[str]:
    """Every stage that has a step called ``name`` (bare), in pipeline order."""
    return [stage for stage, names in STAGES.items() if name in names]


def step_module(name: str) -> ModuleType:
    """The module of step ``name`` (bare, or qualified ``stage.name``)."""
    stage, bare = split_name(name)
    if stage is None:
        found = stages_of(bare)
        stage = found[0] if found else None
    if stage is None or bare not in STAGES.get(stage, ()):
        known = ", ".join(dict.fromkeys(n for names in STAGES.values() for n in names))
        raise KeyError(f"unknown step {name!r} (known: {known})")
    return importlib.import_module(f"{STAGE_PACKAGES.get(stage, DEFAULT_PACKAGE)}.{bare}")


def stage_steps(stage: str) -> list[ModuleType]:
    return [step_module(qualified(stage, name)) for name in STAGES[stage]]


def spec(name: str) -> StepSpec:
    return step_module(name).SPEC


# Where a stage runs a shared step with other defaults than the step's own (each says why
# in its help, and config/ shows it).
STAGE_DEFAULTS: dict[tuple[str, str], dict[str, tuple[object, str]]] = {
    # A pixel map evaluated every 10 pixels and interpolated by cubic splines is within
    # 1e-8 px of the exact one and saves ~0.9 s of gwcs evaluation per full-frame exposure;
    # set pixmap_stepsize=1, pixmap_order=1 to reproduce the official i2d bit for bit.
    ("image2", "resample"): {
        "pixmap_stepsize": (10.0, "Image2 default 10 (official 1): within 1e-8 px, ~0.9 s less per exposure."),
        "pixmap_order": (3, "Image2 default 3 (official 1): cubic interpolation of the sparse map."),
    },
    ("image3", "resample"): {
        "pixmap_stepsize": (10.0, "Image3 default 10 (official 1): within 1e-8 px, ~1.4 s less per exposure."),
        "pixmap_order": (3, "Image3 default 3 (official 1): cubic interpolation of the sparse map."),
    },
}


def stage_spec(stage: str, name: str) -> StepSpec:
    """The spec of step ``name`` as it runs in ``stage`` (with that stage's defaults)."""
    base = spec(qualified(stage, name))
    changes = STAGE_DEFAULTS.get((stage, name))
    if not changes:
        return base
    params = tuple(dataclasses.replace(p, default=changes[p.name][0], help=f"{p.help} {changes[p.name][1]}")
                   if p.name in changes else p for p in base.params)
    return dataclasses.replace(base, params=params)


def all_specs() -> dict[str, dict[str, StepSpec]]:
    return {stage: {name: stage_spec(stage, name) for name in names} for stage, names in STAGES.items()}
