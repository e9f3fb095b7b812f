"""Stage 3, Image3: an image3 association of cal files → mosaic, catalog products, crf files.

The chain (jwst 3.0 ``calwebb_image3``, spec image2_image3_wfss.md §3.1) in official
order: tweakreg → skymatch → outlier_detection → resample → source_catalog
(``registry.STAGES["image3"]``). Exposures stream from disk (``webbcal.image3.exposures``): no step
holds more than one exposure group, the output-size accumulators and the median in
memory, whatever the number of members.

Products, in ``output_dir``: ``<exp>_<asn_id>_crf.fits`` per member (after
outlier_detection), ``<product>_i2d.fits`` (with HDRTAB, one row of header keywords per
input, when ``resample.blendheaders``), ``<product>_cat.ecsv``, ``<product>_segm.fits``
(both written even when no source is found: empty catalog, all-zero map), and with
``tweakreg.save_abs_catalog`` ``fit_<refcat>_ref.ecsv``.
Every product goes first to a temporary file next to its target and all are renamed into
place only when the whole chain succeeded (``atomic_path``); an error removes them, so a
failure leaves no partial products.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.image3.exposures import Exposure, check_compatible, open_exposure
from webbcal.image3.hdrtab import header_table
from webbcal.io.atomic import atomic_path
from webbcal.io.product import ProductWriter
from webbcal.pipeline.settings import StepSettings, resolve_stage_settings
from webbcal.steps import outlier_detection, registry, resample, skymatch, source_catalog, tweakreg

log = logging.getLogger("webbcal.image3")



@dataclass
class Image3Result:
    i2d: Path
    catalog: Path | None = None
    segm: Path | None = None
    crf: list[Path] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skies: dict[str, float] = field(default_factory=dict)


def stage_modules():
    return registry.stage_steps("image3")


def resolve_settings(given: dict | None, source: str = "parameters") -> dict[str, StepSettings]:
    return resolve_stage_settings("image3", given, source=source)


@dataclass
class Members:
    product: str
    asn_id: str
    asn_pool: str
    asn_table: str
    exposures: list[Exposure]


def load_members(asn_path: Path, members_dir: Path | None = None) -> Members:
    """The association's product name and its science members (headers and WCS only).

    Members are looked up next to the association, or in ``members_dir`` when given
    (the workflow keeps associations apart from the cal files it writes).
    """
    from webbcal.asn import read_association
    from webbcal.asn.io import member_path

    asn = read_association(asn_path)
    if len(asn.products) != 1:
        raise WebbcalError(asn_path, f"an image3 association has one product, this one has {len(asn.products)}")
    product = asn.products[0]
    science = product.members_of_type("science")
    if not science:
        raise WebbcalError(asn_path, f"product {product.name!r} has no science member")
    exposures = []
    for member in science:
        path = (Path(members_dir) / Path(member.expname).name if members_dir
                else member_path(asn_path, member))
        if not path.exists():
            raise WebbcalError(asn_path, f"member {member.expname} not found in {path.parent}")
        exposures.append(open_exposure(path))
    check_compatible(exposures, asn_path)
    return Members(product=product.name, asn_id=asn.asn_id, asn_pool=asn.asn_pool,
                   asn_table=asn_path.name, exposures=exposures)


def run_image3(asn_path, output_dir=None, params: dict | None = None, refs_dir=None,
               members_dir=None, crf_dir=None) -> Image3Result:
    """Run Image3 on an image3 association; products go to ``output_dir`` (default: the asn's).

    Members are read next to the association, or from ``members_dir`` when given. The crf
    files go to ``crf_dir`` when given (created even when outlier_detection is skipped, so
    a workflow can declare it as the job's output), else beside the mosaic.
    """
    asn_path = Path(asn_path)
    settings = resolve_settings(params)
    if settings["resample"].skip:
        raise WebbcalError("image3.resample", "resample is skipped: there would be no mosaic")
    members = load_members(asn_path, members_dir)
    output_dir = Path(output_dir) if output_dir else asn_path.parent
    output_dir.mkdir(parents=True, exist_ok=True)
    crf_dir = Path(crf_dir) if crf_dir else output_dir
    crf_dir.mkdir(parents=True, exist_ok=True)
    exposures = members.exposures
    statuses, seconds, crf_paths = {}, {}, []
    moved: dict[str, float] = {}  # seconds of one step's work done inside another
    catalog_path = segm_path = i2d = feed = None
    total = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = ProductWriter(stack)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".webbcal-image3-",
                                                                       dir=output_dir)))

        def save_crf(exposure: Exposure, image) -> None:
            target = crf_dir / f"{exposure.name}_{members.asn_id}_crf.fits"
            image.meta["FILENAME"] = target.name
            tmp = writer.write(image.to_product("ImageModel"), target)
            exposure.path = tmp  # later steps read the updated arrays
            if target not in crf_paths:
                crf_paths.append(target)

        def save_table(table, filename: str) -> Path:
            target = output_dir / filename
            table.write(stack.enter_context(atomic_path(target)), format="ascii.ecsv", overwrite=True)
            return target

        def save_work(exposure: Exposure, image) -> None:
            """An intermediate (e.g. sky-subtracted SCI) that is not a product."""
            from webbcal.io.product import write_product

            exposure.path = write_product(image.to_product("ImageModel"), scratch / f"{exposure.name}_work.fits")

        i2d_target = output_dir / f"{members.product}_i2d.fits"
        for module in stage_modules():
            name = module.SPEC.name
            step = settings[name]
            start = time.perf_counter()
            if step.skip:
                statuses[name] = "SKIPPED"
                log.info("%-18s skipped", name)
                continue
            if name == "tweakreg":
                status = tweakreg.apply(exposures, step.params, save_table=save_table)
            elif name == "skymatch":
                status = skymatch.apply(exposures, step.params, save=save_work)
            elif name == "outlier_detection":
                grid = resample.output_grid(exposures, resample.SPEC.defaults())
                feed = MosaicFeed.for_grid(exposures, settings["resample"], grid, step.params)
                status = outlier_detection.apply(exposures, step.params, grid, scratch, save_crf,
                                                 flagged=feed.add if feed else None)
                if feed:  # the final drizzle done inside this step is resample's time
                    moved[name], moved["resample"] = -feed.seconds, feed.seconds
            elif name == "resample":
                fed = feed.resampler if feed and feed.complete(exposures) else None
                i2d = mosaic(exposures, step.params, statuses, members, fed)
                writer.write(i2d, i2d_target)
                status = "COMPLETE"
            elif name == "source_catalog":
                refs = catalog_references(i2d.meta, step, refs_dir)
                table, segm = source_catalog.run(i2d, refs, step.params)
                status = "COMPLETE"
                catalog_path = save_table(table, f"{members.product}_cat.ecsv")
                segm_path = output_dir / f"{members.product}_segm.fits"
                writer.write(segm, segm_path)
            else:  # pragma: no cover - a registry step this build does not know
                raise WebbcalError("image3", f"step {name!r} is not implemented in this build")
            statuses[name] = status
            for exposure in exposures:
                if name not in ("resample", "source_catalog"):
                    exposure.meta[module.SPEC.status_key] = status
            seconds[name] = time.perf_counter() - start + moved.get(name, 0.0)
            log.info("%-18s %-8s %6.2f s", name, status, seconds[name])
    log.info("image3 %s done in %.1f s", members.product, time.perf_counter() - total)
    skies = {e.name: float(e.meta["BKGLEVEL"]) for e in exposures if e.meta.get("BKGLEVEL") is not None}
    return Image3Result(i2d=i2d_target, catalog=catalog_path, segm=segm_path, crf=crf_paths,
                        statuses=statuses, seconds=seconds, skies=skies)


def run_source_catalog(i2d_path, *, cat_path=None, segm_path=None, params: dict | None = None,
                       refs_dir=None) -> tuple[Path, Path]:
    """source_catalog alone on a mosaic: ``<product>_cat.ecsv`` and ``_segm.fits`` beside it
    (or at the given paths), both written only when both are made.

    The workflow runs the catalog as its own job, so a source_catalog parameter change
    redoes the catalog (and what reads it), not the mosaic. ``params`` as for run_image3
    (only its ``source_catalog`` entry is used).
    """
    from webbcal.io.product import read_product

    i2d_path = Path(i2d_path)
    step = resolve_settings(params)["source_catalog"]
    if step.skip:
        raise WebbcalError("image3.source_catalog", "source_catalog is skipped: there would be no catalog")
    root = i2d_path.name.removesuffix(".fits").removesuffix("_i2d")
    cat_path = Path(cat_path) if cat_path else i2d_path.with_name(f"{root}_cat.ecsv")
    segm_path = Path(segm_path) if segm_path else i2d_path.with_name(f"{root}_segm.fits")
    start = time.perf_counter()
    i2d = read_product(i2d_path, expect=("ImageModel",))
    table, segm = source_catalog.run(i2d, catalog_references(i2d.meta, step, refs_dir), step.params)
    with contextlib.ExitStack() as stack:
        ProductWriter(stack).write(segm, segm_path)
        table.write(stack.enter_context(atomic_path(cat_path)), format="ascii.ecsv", overwrite=True)
    log.info("source_catalog %s: %d sources in %.1f s", i2d_path.name, len(table), time.perf_counter() - start)
    return cat_path, segm_path


def catalog_references(meta, step: StepSettings, refs_dir) -> dict:
    """APCORR and ABVEGAOFFSET for the mosaic; each optional (official fallbacks without)."""
    from webbcal.errors import ReferenceNotFound
    from webbcal.pipeline.detector1 import ReferenceProvider, _cache_configured
    from webbcal.refs import RefCache

    cache = RefCache.from_config(refs_dir) if refs_dir is not None or _cache_configured() else None
    provider = ReferenceProvider(meta, cache)
    found = {}
    for reftype in source_catalog.SPEC.reftypes:
        if step.overrides.get(reftype) == "N/A" or (cache is None and reftype not in step.overrides):
            continue
        try:
            found.update(provider.get([reftype], step.overrides))
        except ReferenceNotFound:
            log.warning("no %s reference: source_catalog uses the official fallback", reftype)
    return found


def mosaic_resampler(exposures: list[Exposure], params: dict, grid=None):
    """The final mosaic's accumulator on the grid ``params`` define (``grid`` if known)."""
    from webbcal.resample import Resampler

    grid = grid or resample.output_grid(exposures, params)
    ratio = resample.effective_ratio(grid, exposures[0], params)
    return Resampler(grid, kernel=params["kernel"], pixfrac=params["pixfrac"],
                     fillval=params["fillval"], weight_type=params["weight_type"],
                     pixel_scale_ratio=ratio, enable_ctx=params["enable_ctx"],
                     enable_var=params["report_var"], enable_err=params["enable_err"],
                     n_inputs=len(exposures), pixmap_stepsize=params["pixmap_stepsize"],
                     pixmap_order=params["pixmap_order"], propagate_dq=params["propagate_dq"])


@dataclass
class MosaicFeed:
    """The final drizzle fed by outlier_detection, each exposure right after it is flagged.

    The blot maps every exposure pixel onto the outlier grid; when the mosaic's grid and
    pixel-map settings are the same, that map and the flagged image in memory are what the
    final drizzle needs, so it is not read back from the crf nor mapped again (1.6 s of a
    33 s 8-exposure run). The result is bit-identical to drizzling the crf files afterwards.
    """

    resampler: object
    names: list = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def for_grid(cls, exposures, final: StepSettings, grid, outlier_params: dict):
        if final.skip or any(final.params[key] != outlier_params[key]
                             for key in ("pixmap_stepsize", "pixmap_order")):
            return None
        final_grid = resample.output_grid(exposures, final.params)
        if not same_grid(final_grid, grid):
            return None
        return cls(mosaic_resampler(exposures, final.params, final_grid))

    def add(self, exposure: Exposure, image, pixmap) -> None:
        from webbcal.resample import ResampleInput

        start = time.perf_counter()
        self.resampler.add(ResampleInput.from_image(image), pixmap=pixmap)
        self.names.append(exposure.name)
        self.seconds += time.perf_counter() - start

    def complete(self, exposures) -> bool:
        return self.names == [e.name for e in exposures]


def same_grid(a, b) -> bool:
    """Same shape and the same sky position of the corners and centre, to the bit."""
    if tuple(a.shape) != tuple(b.shape):
        return False
    ny, nx = a.shape
    x = np.array([0.0, nx - 1.0, 0.0, nx - 1.0, (nx - 1) / 2])
    y = np.array([0.0, 0.0, ny - 1.0, ny - 1.0, (ny - 1) / 2])
    return bool(np.array_equal(np.asarray(a.wcs(x, y)), np.asarray(b.wcs(x, y))))


def mosaic(exposures: list[Exposure], params: dict, statuses: dict, members: Members,
           resampler=None):
    """Drizzle every exposure, one at a time, onto the common grid → i2d Product
    (``resampler``: one already fed with every exposure, see ``MosaicFeed``)."""
    from webbcal.io.provenance import stamp_provenance
    from webbcal.resample import ResampleInput
    from webbcal.resample.product import i2d_product

    first = exposures[0]
    if resampler is None:
        resampler = mosaic_resampler(exposures, params)
        for exposure in exposures:
            resampler.add(ResampleInput.from_image(exposure.load()))
    grid, ratio = resampler.grid, resampler.pixel_scale_ratio
    result = resampler.finalize()
    meta = first.meta.copy()
    for key in ("BKGLEVEL", "BKGSUB", "BKGMETH"):
        meta.remove(key, ignore_missing=True, remove_all=True)
    for name, status in statuses.items():
        key = {"skymatch": "S_SKYMAT", "outlier_detection": "S_OUTLIR", "tweakreg": "S_TWKREG"}.get(name)
        if key:
            meta[key] = status
    meta["ASNPOOL"] = members.asn_pool
    meta["ASNTABLE"] = members.asn_table
    _blend(meta, exposures)
    product = i2d_product(result, grid, meta, bunit=first.bunit, pixfrac=params["pixfrac"],
                          weight_type=params["weight_type"], pixel_scale_ratio=ratio,
                          report_var=params["report_var"],
                          input_regions=[e.meta.get("S_REGION") for e in exposures])
    stamp_provenance(product.meta, product.tree, step_params={"resample": dict(params)},
                     references={}, inputs=[e.source.name for e in exposures])
    if params["blendheaders"]:
        product.tables["HDRTAB"] = header_table([e.meta for e in exposures])
    return product


# Keywords combined over the inputs (jwst model_blender rules); sums are set by resample.
_MIN = ("DATE-OBS", "TIME-OBS", "DATE-BEG", "MJD-BEG", "EXPSTART")
_MAX = ("DATE-END", "MJD-END", "EXPEND")
_MULTI = ("DETECTOR", "MODULE")


def _blend(meta, exposures: list[Exposure]) -> None:
    for key in _MIN + _MAX:
        values = [e.meta[key] for e in exposures if e.meta.get(key) is not None]
        if values:
            meta[key] = (min if key in _MIN else max)(values)
    mids = [float(e.meta["EXPMID"]) for e in exposures if e.meta.get("EXPMID") is not None]
    if mids:
        meta["EXPMID"] = sum(mids) / len(mids)
    for key in _MULTI:
        values = []
        for e in exposures:
            value = str(e.meta.get(key, "")).strip()
            if value and value not in values:
                values.append(value)
        if len(values) > 1:
            meta[key] = "MULTIPLE"
