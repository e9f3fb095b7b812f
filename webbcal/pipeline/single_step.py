"""Running one step alone on a file (``webbcal step``), as ``strun`` does."""

from __future__ import annotations

from pathlib import Path

from webbcal.errors import WebbcalError
from webbcal.io.product import read_product, write_product
from webbcal.pipeline.detector1 import ReferenceProvider, calibrate_ramp, _cache_configured, _stamp
from webbcal.pipeline.ramp_io import check_readout_keywords, ramp_from_product, ramp_to_product
from webbcal.pipeline.settings import resolve_stage_settings
from webbcal.refs import RefCache
from webbcal.steps import registry


def default_output(input_path: Path, suffix: str) -> Path:
    stem = input_path.name.removesuffix(".fits")
    head, sep, tail = stem.rpartition("_")
    if sep and tail in ("uncal", "ramp", "rate") + registry.STAGES["detector1"]:
        stem = head
    return input_path.with_name(f"{stem}_{suffix}.fits")


def run_single_step(name: str, input_path, output=None, *, params=None, refs_dir=None,
                    rateints_path=None) -> list[Path]:
    input_path = Path(input_path)
    stage = next(s for s, names in registry.STAGES.items() if name in names)
    if stage != "detector1":
        raise WebbcalError(None, f"step {name} belongs to {stage}, which is not available yet")
    settings = resolve_stage_settings(stage, {name: dict(params or {})}, source="command line")
    cache = RefCache.from_config(refs_dir) if refs_dir is not None or _cache_configured() else None
    if name == "gain_scale":
        raise WebbcalError(input_path, "gain_scale runs on ramp_fit results inside detector1; "
                                       "run 'webbcal detector1' instead")
    product = read_product(input_path, expect=("Level1bModel", "RampModel"))
    ramp = ramp_from_product(product)
    check_readout_keywords(ramp.meta, input_path)
    try:
        result = calibrate_ramp(ramp, settings, ReferenceProvider(ramp.meta, cache, ramp.data.shape), only=name)
    except WebbcalError as exc:
        raise (WebbcalError(input_path, exc.problem) if exc.path is None else exc) from None
    if name == "ramp_fit":
        if result.rate is None:
            raise WebbcalError(input_path, "no usable data: nothing to fit")
        output = Path(output) if output else default_output(input_path, "rate")
        rateints_path = Path(rateints_path) if rateints_path else output.with_name(
            output.name.replace("_rate.fits", "_rateints.fits")
            if output.name.endswith("_rate.fits") else output.stem + "_rateints.fits")
        _stamp(result.rateints, result, settings, [input_path])
        _stamp(result.rate, result, settings, [input_path])
        write_product(result.rateints, rateints_path)
        write_product(result.rate, output)
        return [output, rateints_path]
    output = Path(output) if output else default_output(input_path, name)
    ramp_product = ramp_to_product(result.ramp)
    _stamp(ramp_product, result, settings, [input_path])
    write_product(ramp_product, output)
    return [output]
