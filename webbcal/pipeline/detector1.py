"""Stage 1, Detector1: raw ramps (uncal) -> count rates (rate, rateints).

The chain of steps is ``registry.STAGES["detector1"]`` (the official NIR order).
Each step's ``apply`` updates the working ``Ramp`` in place; ramp_fit turns it into
two ``SlopeImage``s; gain_scale scales both. References are selected once per
exposure from the cache (or taken from ``override_<reftype>``) and shared between
the steps that need them. Products are written only when every step has succeeded,
each atomically, so a failure leaves no output behind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from webbcal import __version__, dqflags
from webbcal.errors import WebbcalError
from webbcal.io.product import Product, read_product, write_product
from webbcal.pipeline.ramp_io import check_readout_keywords, ramp_from_product, ramp_to_product, slope_to_product
from webbcal.pipeline.settings import StepSettings, resolve_stage_settings
from webbcal.refs import RefCache, get_references
from webbcal.steps import registry
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.detector1")

# The reference override value that means "no such reference: skip the step", as in CRDS.
NOT_APPLICABLE = "N/A"


@dataclass
class Detector1Result:
    rate: Product | None
    rateints: Product | None
    ramp: Ramp
    statuses: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class ReferenceProvider:
    """Loads each reference type once per exposure, from an override or the cache."""

    def __init__(self, header, cache: RefCache | None, sci_shape=None):
        self.header = header
        self.cache = cache
        self.sci_shape = sci_shape
        self.loaded: dict[str, Product] = {}
        self.used: dict[str, str] = {}  # every reference loaded, for provenance

    def get(self, reftypes, overrides: dict[str, str]) -> dict[str, Product]:
        wanted = [r for r in reftypes if r not in self.loaded]
        if wanted:
            if self.cache is None and any(r not in overrides for r in wanted):
                missing = ", ".join(r for r in wanted if r not in overrides)
                raise WebbcalError(None, f"no reference cache configured and no override for {missing} "
                                         "(set refs_dir, $WEBBCAL_REFS or override_<reftype>)")
            self.loaded.update(get_references(wanted, self.header, self.cache,
                                              {r: overrides[r] for r in wanted if r in overrides},
                                              sci_shape=self.sci_shape))
            self.used.update({r: str(self.loaded[r].path) for r in wanted})
        return {r: self.loaded[r] for r in reftypes}

    def release(self, keep) -> None:
        """Forget the references no later step needs (a full-frame dark alone is ~170 MB)."""
        for reftype in [r for r in self.loaded if r not in keep]:
            del self.loaded[reftype]

    def names(self) -> dict[str, str]:
        return dict(self.used)


def calibrate_ramp(ramp: Ramp, settings: dict[str, StepSettings], refs: ReferenceProvider,
                   *, only: str | None = None, start: str | None = None) -> Detector1Result:
    """Run the Detector1 steps on ``ramp`` (in place); ``only`` runs one step alone.

    ``start`` names the first step to run: the earlier ones are taken as done (a
    calibrated ramp) and neither run nor given a status.
    """
    result = Detector1Result(rate=None, rateints=None, ramp=ramp)
    slopes = None
    modules = registry.stage_steps("detector1")
    if start is not None:
        modules = modules[[m.SPEC.name for m in modules].index(start):]
        # a restarted jump finds the ramp as the first jump found it: its flags are cleared
        # (jump sets nothing else); a correction already applied to the data (persistence)
        # is not applied twice
        if not settings["jump"].skip and "jump" in [m.SPEC.name for m in modules]:
            ramp.groupdq &= np.uint8(~dqflags.JUMP_DET & 0xFF)
        done = [m for m in modules if m.SPEC.name not in ("jump", "ramp_fit", "gain_scale")
                and str(ramp.meta.get(m.SPEC.status_key, "")).strip().upper() == "COMPLETE"]
        modules = [m for m in modules if m not in done]
    for index, module in enumerate(modules):
        refs.release(_reftypes_from(modules[index:], settings, only))
        spec = module.SPEC
        step = settings[spec.name]
        skip = step.skip if only is None else spec.name != only
        if only is not None and skip:
            continue
        if spec.name == "gain_scale":
            if slopes is None:
                continue
        not_applicable = any(step.overrides.get(r) == NOT_APPLICABLE for r in spec.reftypes
                             if r not in spec.optional_reftypes)
        if skip or not_applicable:
            status = "SKIPPED"
            ramp.set_status(spec.status_key, status)
            result.statuses[spec.name] = status
            log.info("%-16s skipped", spec.name)
            continue
        start = time.perf_counter()
        usable = [r for r in spec.reftypes if step.overrides.get(r) != NOT_APPLICABLE]
        step_refs = refs.get(usable, step.overrides)
        if spec.name == "ramp_fit":
            slopes = module.apply(ramp, step_refs, step.params)
            status = "COMPLETE" if slopes is not None else "FAILED"
            ramp.set_status(spec.status_key, status)
            if slopes is not None:
                for slope in slopes:
                    slope.meta[spec.status_key] = status
        elif spec.name == "gain_scale":
            status = "SKIPPED"
            for slope in slopes:
                status = module.apply_to_slopes(slope, step_refs, step.params)
                slope.meta[spec.status_key] = status
            ramp.set_status(spec.status_key, status)
        else:
            status = module.apply(ramp, step_refs, step.params)
            ramp.set_status(spec.status_key, status)
            if slopes is not None:  # a step after ramp_fit (none today) still reports
                for slope in slopes:
                    slope.meta[spec.status_key] = status
        result.statuses[spec.name] = status
        result.seconds[spec.name] = time.perf_counter() - start
        log.info("%-16s %-8s %6.2f s", spec.name, status, result.seconds[spec.name])
    result.references = refs.names()
    if slopes is not None:
        rate, rateints = slopes
        result.rate = slope_to_product(rate, per_integration=False)
        result.rateints = slope_to_product(rateints, per_integration=True, tables=ramp.tables)
    return result


def _reftypes_from(modules, settings: dict[str, StepSettings], only: str | None) -> set[str]:
    """Reference types that the steps in ``modules`` that will run may still load."""
    wanted = set()
    for module in modules:
        name = module.SPEC.name
        if (only is not None and name != only) or (only is None and settings[name].skip):
            continue
        wanted.update(module.SPEC.reftypes)
    return wanted


def _stamp(product: Product, result: Detector1Result, settings, inputs) -> None:
    product.meta["CAL_VER"] = __version__
    try:
        from webbcal.io.provenance import stamp_provenance
    except ImportError:  # provenance module not present: keep the version only
        return
    stamp_provenance(product.meta, product.tree,
                     step_params={n: dict(s.params, skip=s.skip) for n, s in settings.items()},
                     references=result.references, inputs=[str(p) for p in inputs])


def run_detector1(uncal_path, *, rate_path=None, rateints_path=None, ramp_path=None,
                  params: dict | None = None, refs_dir=None) -> Detector1Result:
    """Calibrate one exposure: ``uncal_path`` -> rate (+ rateints, + optional ramp).

    ``params`` is ``{step: {param: value, "skip": bool, "override_<reftype>": path}}``;
    missing steps and parameters take their defaults. ``uncal_path`` may also be a
    calibrated ramp (``*_ramp.fits`` saved with ``ramp_path``, or an official RampModel
    after jump): jump (its flags cleared first), ramp_fit and gain_scale then run, e.g. to
    redo them with other parameters without recalibrating the groups.
    """
    uncal_path = Path(uncal_path)
    settings = resolve_stage_settings("detector1", params)
    total = time.perf_counter()
    product = read_product(uncal_path, expect=("Level1bModel", "RampModel"))
    ramp = ramp_from_product(product)
    check_readout_keywords(ramp.meta, uncal_path)
    start = RESTART_STEP if is_calibrated_ramp(product.model, ramp.meta) else None
    if start is not None:
        log.info("%s is a calibrated ramp (S_JUMP=%s): running %s and the steps after it",
                 uncal_path.name, ramp.meta.get("S_JUMP"), start)
    cache = RefCache.from_config(refs_dir) if refs_dir is not None or _cache_configured() else None
    try:
        provider = ReferenceProvider(ramp.meta, cache, ramp.data.shape)
        result = calibrate_ramp(ramp, settings, provider, start=start)
    except WebbcalError as exc:
        if exc.path is None:  # attribute the problem to the exposure being processed
            raise WebbcalError(uncal_path, exc.problem) from None
        raise
    if (rate_path or rateints_path) and (result.rate is None or _no_science_data(result.ramp)):
        raise WebbcalError(uncal_path, "no usable data: every pixel is saturated in group 0 "
                                       "of every integration, so no rate can be fitted")
    outputs = []
    if ramp_path:
        ramp_product = ramp_to_product(result.ramp)
        _stamp(ramp_product, result, settings, [uncal_path])
        outputs.append((ramp_product, ramp_path))
    if rateints_path:
        _stamp(result.rateints, result, settings, [uncal_path])
        outputs.append((result.rateints, rateints_path))
    if rate_path:
        _stamp(result.rate, result, settings, [uncal_path])
        outputs.append((result.rate, rate_path))
    for out_product, out_path in outputs:
        write_product(out_product, out_path)
    log.info("detector1 %s done in %.1f s", uncal_path.name, time.perf_counter() - total)
    return result


# Where a calibrated ramp resumes: its groups are calibrated; jump is redone from scratch.
RESTART_STEP = "jump"


def is_calibrated_ramp(model: str, meta) -> bool:
    """A RampModel whose jump step has run (or was skipped on purpose): ramp_fit is next."""
    return model == "RampModel" and str(meta.get("S_JUMP", "")).strip().upper() in (
        "COMPLETE", "SKIPPED")


def _no_science_data(ramp: Ramp) -> bool:
    """True when every light-sensitive pixel is saturated in group 0 of every integration.

    The official pipeline only gives up when *all* pixels are; its NO_SAT_CHECK
    reference pixels never saturate, so it writes a rate whose every science pixel is
    NaN. webbcal reports the exposure as unusable instead.
    """
    science = (ramp.pixeldq & dqflags.REFERENCE_PIXEL) == 0
    if not science.any():
        return False
    saturated = np.all((ramp.groupdq[:, 0] & dqflags.SATURATED) != 0, axis=0)
    return bool(saturated[science].all())


def _cache_configured() -> bool:
    import os

    return bool(os.environ.get("WEBBCAL_REFS") or os.environ.get("CRDS_PATH"))
