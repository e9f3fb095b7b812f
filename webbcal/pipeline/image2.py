"""Stage 2, Image2: count rates (rate) → calibrated images (cal) + single-exposure i2d.

The chain (jwst 3.0 ``calwebb_image2``, spec image2_image3_wfss.md §2.1) per Level-2
product: background (only when the association lists background members) →
assign_wcs → flat_field → photom → resample (2-D NRC_IMAGE only). References are selected
once per exposure (or taken from ``override_<reftype>``); the cal and i2d products are
written only when every step has succeeded, each atomically, so a failure leaves no
output behind. Input: a rate file or an image2 association (JSON).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from webbcal.asn import member_path, read_association
from webbcal.errors import ReferenceNotFound, WebbcalError
from webbcal.io.product import Product, ProductWriter, read_product, write_product
from webbcal.pipeline.detector1 import NOT_APPLICABLE, ReferenceProvider, _cache_configured
from webbcal.pipeline.settings import StepSettings, resolve_stage_settings
from webbcal.refs import RefCache
from webbcal.steps import background, registry, resample
from webbcal.steps.image_model import CalImage

log = logging.getLogger("webbcal.image2")

IMAGING_EXP_TYPES = ("NRC_IMAGE", "MIR_IMAGE", "NIS_IMAGE", "FGS_IMAGE")
_KNOWN_SUFFIXES = ("_rate", "_rateints", "_bsub", "_cal", "_calints", "_i2d")


@dataclass
class Image2Product:
    """One Level-2 product: the science rate and its background rates."""

    name: str
    science: Path
    backgrounds: list[Path] = field(default_factory=list)
    asn_path: Path | None = None
    asn_pool: str = "singleton"


@dataclass
class Image2Result:
    cal: Product
    i2d: Product | None
    image: CalImage
    statuses: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- settings

def stage_modules():
    return registry.stage_steps("image2")


def resolve_settings(given: dict | None, source: str = "parameters") -> dict[str, StepSettings]:
    """``resolve_stage_settings("image2", ...)``; ``user_supplied_flat`` is the flat override."""
    settings = resolve_stage_settings("image2", given, source=source)
    flat = settings["flat_field"]
    if flat.params.get("user_supplied_flat"):
        flat.overrides["flat"] = flat.params["user_supplied_flat"]
    return settings


# --------------------------------------------------------------------------- inputs

def product_root(path: Path) -> str:
    stem = path.name.removesuffix(".fits")
    for suffix in _KNOWN_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def load_inputs(path) -> list[Image2Product]:
    """A rate file → one product; an association → its products, every member checked."""
    path = Path(path)
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        if not path.exists():
            raise WebbcalError(path, "no such file")
        return [Image2Product(name=product_root(path), science=path)]
    # One reader for every association: structure, duplicate members, member files that
    # exist next to the association and come from one instrument.
    asn = read_association(path, check_members=True)
    out = []
    for product in asn.products:
        science = product.members_of_type("science")
        if len(science) != 1:
            raise WebbcalError(path, f"product {product.name!r} has {len(science)} science "
                                     "members; image2 needs exactly one")
        backgrounds = [member_path(path, m) for m in product.members_of_type("background")]
        science_path = member_path(path, science[0])
        out.append(Image2Product(name=product.name or product_root(science_path),
                                 science=science_path, backgrounds=backgrounds,
                                 asn_path=path, asn_pool=asn.asn_pool or ""))
    return out


def read_image(path: Path) -> CalImage:
    return CalImage.from_product(read_product(path, expect=("ImageModel",)))


# --------------------------------------------------------------------------- the chain

def calibrate_image(image: CalImage, settings: dict[str, StepSettings], refs: ReferenceProvider,
                    backgrounds: list[CalImage] | None = None, *, only: str | None = None,
                    with_resample: bool = True) -> Image2Result:
    """Run the Image2 steps on ``image`` (in place); ``only`` runs one step alone."""
    statuses, seconds = {}, {}
    i2d = None
    references: dict[str, str] = {}
    for module in stage_modules():
        spec = module.SPEC
        step = settings[spec.name]
        skip = step.skip if only is None else spec.name != only
        if only is not None and skip:
            continue
        not_applicable = any(step.overrides.get(r) == NOT_APPLICABLE for r in spec.reftypes
                             if r not in spec.optional_reftypes)
        start = time.perf_counter()
        if spec.name == "background":
            status = "SKIPPED" if skip else background.apply(image, backgrounds or [], step.params)
            if status == "SKIPPED":
                statuses[spec.name] = status  # official: not run at all, keyword untouched
                log.info("%-16s skipped", spec.name)
                continue
        elif spec.name == "resample":
            # references are done with: record them and let the (full-frame) arrays go
            references.update(refs.names())
            refs.loaded.clear()
            exp_type = str(image.meta.get("EXP_TYPE", "")).upper()
            if skip or not with_resample or exp_type not in IMAGING_EXP_TYPES:
                statuses[spec.name] = "SKIPPED"
                log.info("%-16s skipped", spec.name)
                continue
            i2d = resample.resample_images([image], {**step.params, "blendheaders": False})
            status = "COMPLETE"
        elif skip or not_applicable:
            status = "SKIPPED"
        else:
            status = module.apply(image, step_references(refs, spec, step.overrides), step.params)
        if spec.name != "resample":
            image.set_status(spec.status_key, status)
        statuses[spec.name] = status
        seconds[spec.name] = time.perf_counter() - start
        log.info("%-16s %-8s %6.2f s", spec.name, status, seconds[spec.name])
    cal = image.to_product("ImageModel")
    return Image2Result(cal=cal, i2d=i2d, image=image, statuses=statuses,
                        references={**references, **refs.names()}, seconds=seconds)


def step_references(refs: ReferenceProvider, spec, overrides: dict) -> dict:
    """The step's references; optional ones (filteroffset, area) may be absent, as CRDS's N/A."""
    usable = [r for r in spec.reftypes if overrides.get(r) != NOT_APPLICABLE]
    found = refs.get([r for r in usable if r not in spec.optional_reftypes], overrides)
    for reftype in [r for r in usable if r in spec.optional_reftypes]:
        try:
            found.update(refs.get([reftype], overrides))
        except ReferenceNotFound:
            log.info("no %s reference for this exposure: %s runs without it", reftype, spec.name)
    return found


def _stamp(product: Product, result: Image2Result, settings, inputs) -> None:
    from webbcal.io.provenance import stamp_provenance

    stamp_provenance(product.meta, product.tree,
                     step_params={n: dict(s.params, skip=s.skip) for n, s in settings.items()},
                     references=result.references, inputs=[str(p) for p in inputs])


def default_outputs(item: Image2Product, directory: Path | None = None) -> tuple[Path, Path]:
    folder = directory or item.science.parent
    return folder / f"{item.name}_cal.fits", folder / f"{item.name}_i2d.fits"


def run_image2(input_path, *, cal_path=None, i2d_path=None, params: dict | None = None,
               refs_dir=None, save_i2d: bool = True) -> list[Image2Result]:
    """Calibrate a rate file or every product of an image2 association.

    ``params`` is ``{step: {param: value, "skip": bool, "override_<reftype>": path}}``.
    ``cal_path``/``i2d_path`` name the outputs of a single product (default
    ``<product>_cal.fits`` / ``_i2d.fits`` next to the science member).
    """
    input_path = Path(input_path)
    settings = resolve_settings(params)
    items = load_inputs(input_path)
    if len(items) > 1 and (cal_path or i2d_path):
        raise WebbcalError(input_path, f"association has {len(items)} products; output names "
                                       "cannot be given for more than one (omit -o/--i2d)")
    cache = RefCache.from_config(refs_dir) if refs_dir is not None or _cache_configured() else None
    results = []
    # Each output goes to a temporary file next to its target as soon as it is made (memory
    # stays one product deep); all are renamed into place only after every product succeeded,
    # and an error removes them all (atomic_path), so a failure leaves no output behind.
    with contextlib.ExitStack() as outputs:
        writer = ProductWriter(outputs)
        for item in items:
            result = calibrate_product(item, settings, cache, save_i2d)
            default_cal, default_i2d = default_outputs(item)
            targets = [(result.cal, Path(cal_path) if cal_path else default_cal)]
            if result.i2d is not None:
                targets.append((result.i2d, Path(i2d_path) if i2d_path else default_i2d))
            for product, target in targets:
                writer.write(product, target)
                product.path = target
            if len(items) > 1:  # keep statuses, not arrays, of many products
                result.image = None
            results.append(result)
    return results


def calibrate_product(item: Image2Product, settings, cache, save_i2d: bool = True) -> Image2Result:
    """Read one product's science (and background) rates and run the chain on it."""
    total = time.perf_counter()
    image = read_image(item.science)
    image.meta["ASNPOOL"] = item.asn_pool
    image.meta["ASNTABLE"] = item.asn_path.name if item.asn_path else "singleton"
    backgrounds = [read_image(p) for p in item.backgrounds]
    bkg_list = settings["background"].params.get("bkg_list")
    if not backgrounds and bkg_list:
        backgrounds = [read_image(Path(p.strip())) for p in str(bkg_list).split(",") if p.strip()]
    refs = ReferenceProvider(image.meta, cache, image.shape)
    try:
        result = calibrate_image(image, settings, refs, backgrounds, with_resample=save_i2d)
    except WebbcalError as exc:
        if exc.path is None:
            raise WebbcalError(item.science, exc.problem) from None
        raise
    inputs = [item.science, *item.backgrounds]
    _stamp(result.cal, result, settings, inputs)
    if result.i2d is not None:
        _stamp(result.i2d, result, settings, inputs)
    log.info("image2 %s done in %.1f s", item.science.name, time.perf_counter() - total)
    return result


def run_image2_step(name: str, input_path, output=None, *, params: dict | None = None,
                    refs_dir=None) -> Path:
    """Run one Image2 step alone on a rate/cal file (``webbcal step NAME``, like strun).

    The output is ``<root>_<name>.fits`` next to the input unless given; for ``resample``
    it is the i2d product of the input (which must already carry a WCS).
    """
    input_path = Path(input_path)
    settings = resolve_settings({name: dict(params or {})}, source="command line")
    if name == "background":
        raise WebbcalError(input_path, "background needs an association with background members; "
                                       "run 'webbcal image2 ASN' instead")
    cache = RefCache.from_config(refs_dir) if refs_dir is not None or _cache_configured() else None
    image = read_image(input_path)
    if name == "resample" and image.wcs is None:
        raise WebbcalError(input_path, "has no WCS (ASDF meta.wcs); run assign_wcs first")
    refs = ReferenceProvider(image.meta, cache, image.shape)
    try:
        result = calibrate_image(image, settings, refs, only=name)
    except WebbcalError as exc:
        raise (WebbcalError(input_path, exc.problem) if exc.path is None else exc) from None
    product = result.i2d if name == "resample" else result.cal
    output = Path(output) if output else input_path.with_name(
        f"{product_root(input_path)}_{'i2d' if name == 'resample' else name}.fits")
    _stamp(product, result, settings, [input_path])
    write_product(product, output)
    return output
