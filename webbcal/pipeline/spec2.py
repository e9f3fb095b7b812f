"""Stage 2, Spec2 for NIRCam WFSS: a grism rate + the direct image's catalog → cal and x1d.

The chain (jwst 3.0 ``calwebb_spec2`` for NRC_WFSS, spec image2_image3_wfss.md §4.1):
assign_wcs → bkg_subtract → flat_field on the full dispersed image, then extract_2d cuts
one slit per catalog source and order, srctype and photom calibrate the slits, and
extract_1d sums them into spectra. Input: a spec2 association (a ``science`` rate and the
``sourcecat`` member naming the Image3 catalog of the direct image, §1.5) or a rate file
plus a catalog (``catalog=``, else the rate's SCATFILE keyword).

References are selected once per exposure (or taken from ``override_<reftype>``). Without
a BKG reference bkg_subtract is SKIPPED, as the official step does for CRDS "N/A". The
cal (MultiSlitModel) and x1d (WFSSMultiSpecModel) are written only when every step of
every product has succeeded, each atomically, so a failure leaves no output behind.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from webbcal.asn import read_association
from webbcal.errors import ReferenceNotFound, WebbcalError
from webbcal.io.product import Product, ProductWriter, read_product, write_product
from webbcal.pipeline.detector1 import NOT_APPLICABLE, ReferenceProvider, _cache_configured
from webbcal.pipeline.image2 import product_root, step_references
from webbcal.pipeline.settings import StepSettings, resolve_stage_settings
from webbcal.refs import RefCache
from webbcal.steps import registry
from webbcal.steps.image_model import CalImage

log = logging.getLogger("webbcal.spec2")

STAGE = "spec2"
WFSS_EXP_TYPES = ("NRC_WFSS",)
# Steps that work on the whole dispersed image; the others on the slits extract_2d cuts.
IMAGE_STEPS = ("assign_wcs", "bkg_subtract", "flat_field")
# Without these there is nothing for the later steps to work on.
REQUIRED_STEPS = ("assign_wcs", "extract_2d")


@dataclass
class Spec2Product:
    """One Level-2 WFSS product: the grism rate and the direct-image products it is paired with."""

    name: str
    science: Path
    catalog: Path
    asn_path: Path | None = None
    asn_pool: str = "singleton"
    segmap: str | None = None
    direct_image: str | None = None


@dataclass
class Spec2Result:
    cal: Product
    x1d: Product | None
    statuses: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    background_mask: object | None = None  # the bkg_subtract MASK (1 = background), if it ran
    slits: object | None = None  # the GrismSlits (dropped when many products are run)


# --------------------------------------------------------------------------- settings

def stage_modules():
    return registry.stage_steps(STAGE)


def resolve_settings(given: dict | None, source: str = "parameters") -> dict[str, StepSettings]:
    """``{step: {param, skip, override_<reftype>}}`` validated against the Spec2 step specs;
    ``user_supplied_flat`` is the flat override; assign_wcs and extract_2d cannot be skipped."""
    settings = resolve_stage_settings(STAGE, given, source=source)
    flat = settings["flat_field"]
    if flat.params.get("user_supplied_flat"):
        flat.overrides["flat"] = flat.params["user_supplied_flat"]
    for name in REQUIRED_STEPS:
        step = settings[name]
        if step.skip or any(step.overrides.get(r) == NOT_APPLICABLE for r in
                            set(registry.stage_spec(STAGE, name).reftypes)
                            - set(registry.stage_spec(STAGE, name).optional_reftypes)):
            raise WebbcalError(source, f"{STAGE}.{name} cannot be skipped for WFSS: every later step needs it")
    return settings


# --------------------------------------------------------------------------- inputs

def _member_file(name: str, asn_path: Path, members_dir: Path | None) -> Path:
    """A member's file: in ``members_dir`` when given (the workflow's output_dir), else
    next to the association."""
    if members_dir is not None:
        return members_dir / Path(name).name
    return asn_path.parent / name


def load_inputs(path, *, catalog=None, members_dir=None) -> list[Spec2Product]:
    """A rate file (+ catalog) → one product; a spec2 association → its products."""
    path = Path(path)
    members_dir = Path(members_dir) if members_dir else None
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        if not path.exists():
            raise WebbcalError(path, "no such file")
        return [Spec2Product(name=product_root(path), science=path,
                             catalog=_catalog_of_rate(path, catalog))]
    asn = read_association(path)
    out = []
    for item in asn.products:
        science = item.members_of_type("science")
        if len(science) != 1:
            raise WebbcalError(path, f"product {item.name!r} has {len(science)} science members; "
                                     "spec2 needs exactly one")
        catalogs = item.members_of_type("sourcecat")
        if catalog is None and len(catalogs) != 1:
            raise WebbcalError(path, f"product {item.name!r} has {len(catalogs)} sourcecat members; "
                                     "WFSS spec2 needs the direct image's source catalog")
        science_path = _member_file(science[0].expname, path, members_dir)
        if not science_path.exists():
            raise WebbcalError(science_path, "science member of the association: no such file")
        catalog_path = Path(catalog) if catalog is not None else _member_file(
            catalogs[0].expname, path, members_dir)
        first = {kind: (item.members_of_type(kind) or [None])[0] for kind in ("segmap", "direct_image")}
        out.append(Spec2Product(
            name=item.name or product_root(science_path), science=science_path,
            catalog=catalog_path, asn_path=path, asn_pool=asn.asn_pool or "",
            segmap=Path(first["segmap"].expname).name if first["segmap"] else None,
            direct_image=Path(first["direct_image"].expname).name if first["direct_image"] else None))
    return out


def _catalog_of_rate(rate: Path, catalog) -> Path:
    """The catalog of a rate given alone: ``catalog``, else its SCATFILE (official rule)."""
    if catalog is not None:
        return Path(catalog)
    from astropy.io import fits

    try:
        named = str(fits.getheader(rate).get("SCATFILE", "") or "").strip()
    except OSError as exc:
        raise WebbcalError(rate, f"cannot read header: {exc}") from None
    if not named or named.upper() == "N/A":
        raise WebbcalError(rate, "no source catalog: give one (--catalog) or run a spec2 "
                                 "association with a sourcecat member")
    candidate = Path(named)
    # the official pipeline reads the bare name from the working directory; next to the
    # rate is where webbcal's own products put it
    for place in (rate.parent / candidate.name, candidate):
        if place.is_file():
            return place
    return rate.parent / candidate.name


def read_image(path: Path) -> CalImage:
    image = CalImage.from_product(read_product(path, expect=("ImageModel",)))
    exp_type = str(image.meta.get("EXP_TYPE", "")).upper()
    if exp_type not in WFSS_EXP_TYPES:
        raise WebbcalError(path, f"EXP_TYPE is {exp_type or 'missing'}; spec2 here calibrates "
                                 f"{', '.join(WFSS_EXP_TYPES)} exposures")
    return image


# --------------------------------------------------------------------------- the chain

def _set_status(target, key: str, status: str) -> None:
    meta = getattr(target, "meta", None)
    if meta is not None:
        meta[key] = status


def calibrate_exposure(image: CalImage, catalog, settings: dict[str, StepSettings],
                       refs: ReferenceProvider, filename: str | None = None) -> Spec2Result:
    """Run the Spec2 steps on ``image`` (in place) and the slits cut from it."""
    statuses: dict[str, str] = {}
    seconds: dict[str, float] = {}
    slits = x1d = mask = None
    for module in stage_modules():
        spec = module.SPEC
        step = settings[spec.name]
        start = time.perf_counter()
        not_applicable = any(step.overrides.get(r) == NOT_APPLICABLE for r in spec.reftypes
                             if r not in spec.optional_reftypes)
        if step.skip or not_applicable:
            status = "SKIPPED"
        elif spec.name == "bkg_subtract":
            status, mask = _background(module, image, catalog, refs, spec, step)
        elif spec.name in IMAGE_STEPS:
            status = module.apply(image, step_references(refs, spec, step.overrides), step.params)
            if spec.name == "assign_wcs" and status != "COMPLETE":
                raise WebbcalError(None, f"assign_wcs {status}: the grism WCS is needed by every step")
        elif spec.name == "extract_2d":
            slits = module.apply(image, step_references(refs, spec, step.overrides), step.params, catalog)
            status = "COMPLETE"
        elif spec.name == "srctype":
            status = module.apply(slits, step.params)
        elif spec.name == "extract_1d":
            x1d = module.apply(slits, step_references(refs, spec, step.overrides), step.params,
                               filename=filename)
            status = "COMPLETE"
        else:
            status = module.apply(slits, step_references(refs, spec, step.overrides), step.params)
        statuses[spec.name] = status
        _set_status(slits if slits is not None else image, spec.status_key, status)
        seconds[spec.name] = time.perf_counter() - start
        log.info("%-16s %-8s %6.2f s", spec.name, status, seconds[spec.name])
    cal = slits.to_product()
    for name, status in statuses.items():  # every product records every step
        key = registry.stage_spec(STAGE, name).status_key
        cal.meta[key] = status
        if x1d is not None:
            x1d.meta[key] = status
    return Spec2Result(cal=cal, x1d=x1d, statuses=statuses, references=refs.names(),
                       seconds=seconds, background_mask=mask, slits=slits)


def _background(module, image, catalog, refs, spec, step) -> tuple[str, object]:
    """bkg_subtract: SKIPPED without a BKG reference (official), else the fit's status."""
    try:
        found = step_references(refs, spec, step.overrides)
    except ReferenceNotFound as exc:
        log.warning("no BKG reference for this exposure (%s): bkg_subtract skipped", exc.problem)
        return "SKIPPED", None
    result = module.subtract(image, found, step.params, catalog)
    return result.status, result.mask


def _stamp(product: Product, result: Spec2Result, settings, inputs) -> None:
    from webbcal.io.provenance import stamp_provenance

    stamp_provenance(product.meta, product.tree,
                     step_params={n: dict(s.params, skip=s.skip) for n, s in settings.items()},
                     references=result.references, inputs=[str(p) for p in inputs])


def default_outputs(item: Spec2Product, directory: Path | None = None) -> tuple[Path, Path]:
    folder = directory or item.science.parent
    return folder / f"{item.name}_cal.fits", folder / f"{item.name}_x1d.fits"


def calibrate_product(item: Spec2Product, settings, cache) -> Spec2Result:
    """Read one product's rate and catalog and run the chain on them."""
    from webbcal.spec2.catalog import read_source_catalog

    total = time.perf_counter()
    image = read_image(item.science)
    catalog = read_source_catalog(item.catalog)
    image.meta["ASNPOOL"] = item.asn_pool
    image.meta["ASNTABLE"] = item.asn_path.name if item.asn_path else "singleton"
    image.meta["SCATFILE"] = item.catalog.name  # official: basenames of the paired products
    if item.segmap:
        image.meta["SEGMFILE"] = item.segmap
    if item.direct_image:
        image.meta["DIRIMAGE"] = item.direct_image
    refs = ReferenceProvider(image.meta, cache, image.shape)
    try:
        result = calibrate_exposure(image, catalog, settings, refs, filename=item.science.name)
    except WebbcalError as exc:
        if exc.path is None:
            raise WebbcalError(item.science, exc.problem) from None
        raise
    inputs = [item.science, item.catalog]
    _stamp(result.cal, result, settings, inputs)
    if result.x1d is not None:
        _stamp(result.x1d, result, settings, inputs)
    log.info("spec2 %s done in %.2f s (%s)", item.science.name, time.perf_counter() - total,
             ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items()))
    return result


def run_spec2(input_path, *, cal_path=None, x1d_path=None, params: dict | None = None,
              refs_dir=None, catalog=None, members_dir=None) -> list[Spec2Result]:
    """Calibrate a grism rate (with ``catalog``) or every product of a spec2 association.

    ``params`` is ``{step: {param: value, "skip": bool, "override_<reftype>": path}}``.
    ``cal_path``/``x1d_path`` name the outputs of a single product (default
    ``<product>_cal.fits`` / ``_x1d.fits`` next to the science member). ``members_dir``:
    where the association's member files are, when not next to it (the workflow's output
    directory).
    """
    input_path = Path(input_path)
    settings = resolve_settings(params)
    items = load_inputs(input_path, catalog=catalog, members_dir=members_dir)
    if len(items) > 1 and (cal_path or x1d_path):
        raise WebbcalError(input_path, f"association has {len(items)} products; output names "
                                       "cannot be given for more than one (omit -o/--x1d)")
    cache = RefCache.from_config(refs_dir) if refs_dir is not None or _cache_configured() else None
    results = []
    # Every output goes to a temporary file beside its target as soon as it is made; all are
    # renamed into place only after every product succeeded (atomic_path in one ExitStack),
    # and an error removes them all, so a failure leaves no cal or x1d behind.
    with contextlib.ExitStack() as outputs:
        writer = ProductWriter(outputs)
        for item in items:
            result = calibrate_product(item, settings, cache)
            default_cal, default_x1d = default_outputs(item)
            targets = [(result.cal, Path(cal_path) if cal_path else default_cal)]
            if result.x1d is not None:
                targets.append((result.x1d, Path(x1d_path) if x1d_path else default_x1d))
            for product, target in targets:
                writer.write(product, target)
                product.path = target
            if len(items) > 1:  # keep statuses, not arrays, of many products
                result.slits = result.background_mask = None
            results.append(result)
    return results


# --------------------------------------------------------------------------- one step alone

# Official suffixes of the steps' own products (stpipe: the step class alias otherwise).
STEP_SUFFIX = {"bkg_subtract": "bsub", "assign_wcs": "assignwcs", "flat_field": "flatfield"}


def run_spec2_step(name: str, input_path, output=None, *, params: dict | None = None,
                   refs_dir=None, catalog=None) -> Path:
    """Run one Spec2 step that works on the whole grism image alone (``webbcal step``).

    assign_wcs, bkg_subtract and flat_field read a grism rate and write the image
    (``<root>_assignwcs|bsub|flatfield.fits``; bsub carries the MASK extension). The
    grism WCS is rebuilt from the SPECWCS reference whenever a step needs it (bkg_subtract
    with a catalog), since only the imaging WCS is stored in files. The slit steps need
    the chain: run ``webbcal spec2``.
    """
    input_path = Path(input_path)
    if name not in IMAGE_STEPS:
        raise WebbcalError(input_path, f"{name} works on the slits extract_2d cuts; "
                                       "run 'webbcal spec2' on the rate instead")
    settings = resolve_settings({name: dict(params or {})}, source="command line")
    cache = RefCache.from_config(refs_dir) if refs_dir is not None or _cache_configured() else None
    image = read_image(input_path)
    refs = ReferenceProvider(image.meta, cache, image.shape)
    modules = {m.SPEC.name: m for m in stage_modules()}
    mask = None
    try:
        if name == "bkg_subtract" and catalog is not None:
            wcs_step = settings["assign_wcs"]
            modules["assign_wcs"].apply(image, step_references(refs, modules["assign_wcs"].SPEC,
                                                               wcs_step.overrides), wcs_step.params)
        module, step = modules[name], settings[name]
        if name == "bkg_subtract":
            from webbcal.spec2.catalog import read_source_catalog

            found = read_source_catalog(catalog) if catalog is not None else None
            status, mask = _background(module, image, found, refs, module.SPEC, step)
        else:
            status = module.apply(image, step_references(refs, module.SPEC, step.overrides), step.params)
    except WebbcalError as exc:
        raise (WebbcalError(input_path, exc.problem) if exc.path is None else exc) from None
    image.set_status(modules[name].SPEC.status_key, status)
    product = image.to_product("ImageModel")
    if mask is not None:
        product.arrays["MASK"] = mask
    suffix = STEP_SUFFIX.get(name, name)
    output = Path(output) if output else input_path.with_name(f"{product_root(input_path)}_{suffix}.fits")
    result = Spec2Result(cal=product, x1d=None, statuses={name: status}, references=refs.names())
    _stamp(product, result, settings, [input_path] + ([Path(catalog)] if catalog else []))
    write_product(product, output)
    return output
