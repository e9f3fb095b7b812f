"""resample: drizzle calibrated images onto a common sky grid (the i2d product).

Parameters are the official ``ResampleStep`` ones; list parameters (``output_shape``,
``crpix``, ``crval``) are given as ``"a,b"`` strings. The engine is ``webbcal.resample``
(``drizzle`` C kernel, one accumulator, inputs streamed). In Image2 it resamples the one
exposure with ``blendheaders`` off (spec §2.6).
"""

from __future__ import annotations

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.resample import Resampler, ResampleInput, build_output_grid
from webbcal.resample.grid import footprint_from_sregion, read_output_wcs
from webbcal.resample.product import i2d_product
from webbcal.steps.base import Param, StepSpec

SPEC = StepSpec(
    name="resample",
    stage="image2",
    status_key="S_RESAMP",
    params=(
        Param("pixfrac", float, 1.0, "Pixel shrinkage factor (0-1].", minimum=0.0),
        Param("kernel", str, "square", "Flux distribution kernel.",
              choices=("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")),
        Param("fillval", str, "NAN", "Output value for pixels with no weight or flux."),
        Param("weight_type", str, "ivm", "Input image weighting: ivm or exptime.", nullable=True,
              choices=("ivm", "exptime")),
        Param("output_shape", str, None, "Output shape 'nx,ny' (x first).", nullable=True),
        Param("crpix", str, None, "0-based 'x,y' of the reference pixel.", nullable=True),
        Param("crval", str, None, "'ra,dec' (deg) of the reference pixel.", nullable=True),
        Param("rotation", float, None, "Output +Y position angle East of North (deg); null: "
                                       "the exposure's orientation.", nullable=True),
        Param("pixel_scale_ratio", float, 1.0, "Output / input pixel scale.", minimum=0.0),
        Param("pixel_scale", float, None, "Absolute output pixel scale, arcsec (overrides the ratio).",
              nullable=True),
        Param("output_wcs", str, "", "ASDF file with a gwcs (array_shape set) to resample onto."),
        Param("single", bool, False, "Resample each input to its own output grid."),
        Param("blendheaders", bool, True, "Blend input metadata into the output (Image3)."),
        Param("in_memory", bool, True, "Keep inputs in memory (webbcal always streams them)."),
        Param("enable_ctx", bool, True, "Compute the CON context array."),
        Param("enable_err", bool, True, "Compute the ERR array."),
        Param("report_var", bool, True, "Write the VAR_* arrays."),
        Param("propagate_dq", bool, False, "Write a DQ array: OR of the contributing input DQs."),
        Param("pixmap_stepsize", float, 1.0, "Pixel-map step; > 1 interpolates a sparse map."),
        Param("pixmap_order", int, 1, "Spline order of the pixel-map interpolation (1 or 3).",
              minimum=1),
        Param("allowed_memory", float, None,
              "Largest fraction of the memory available now that the output arrays may take; "
              "a larger grid stops with an error before allocating (null: 1.0).",
              nullable=True, minimum=0.0),
    ),
    doc="Drizzle the calibrated image(s) onto a distortion-free TAN grid (*_i2d.fits).",
)


def _pair(text, name, kind=float):
    if text is None or text == "":
        return None
    parts = [p for p in str(text).replace(" ", ",").split(",") if p]
    try:
        values = [kind(p) for p in parts]
    except ValueError:
        raise WebbcalError(f"resample.{name}", f"expects two numbers 'a,b', got {text!r}") from None
    if len(values) != 2:
        raise WebbcalError(f"resample.{name}", f"expects two numbers 'a,b', got {text!r}")
    return values


def output_grid(images, params: dict):
    """The output grid for ``images`` (CalImage-like: .wcs, .meta) and the parameters,
    checked to fit in memory before anything of its size is allocated."""
    if params.get("output_wcs"):
        grid = read_output_wcs(params["output_wcs"])
    else:
        grid = _grid_from_footprints(images, params)
    check_output_memory(grid.shape, len(images), params)
    return grid


def output_bytes(shape, n_inputs: int, params: dict) -> int:
    """Bytes of the accumulators a Resampler keeps for an output of ``shape``."""
    per_pixel = 4 * 2  # SCI and WHT, float32
    if params.get("enable_ctx", True):
        per_pixel += 4 * max(1, -(-n_inputs // 32))  # CON: one int32 plane per 32 inputs
    if params.get("report_var", True) or params.get("enable_err", True):
        per_pixel += 4 * 2 * 3 + 4  # running sum and weight of 3 variances, then ERR
        per_pixel += 4 * 4  # one fresh plane per variance and their weight (one-pass drizzle)
    if params.get("propagate_dq", False):
        per_pixel += 4
    return int(shape[0]) * int(shape[1]) * per_pixel


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_output_memory(shape, n_inputs: int, params: dict, available: int | None = None) -> None:
    """Stop with a clear error, instead of being killed, when the output cannot fit."""
    available = available_memory_bytes() if available is None else available
    if available is None:
        return
    fraction = params.get("allowed_memory")
    fraction = 1.0 if fraction is None else float(fraction)
    needed = output_bytes(shape, n_inputs, params)
    if needed > fraction * available:
        raise WebbcalError("resample.allowed_memory",
                           f"the output grid {shape[1]} x {shape[0]} px needs {needed / 1e9:.1f} GB, "
                           f"more than {fraction:g} of the {available / 1e9:.1f} GB available; "
                           "use a coarser pixel_scale, a smaller output_shape, or raise allowed_memory")


def _grid_from_footprints(images, params: dict):
    first = images[0]
    footprints = [footprint_from_sregion(im.meta.get("S_REGION"), im.path) for im in images]
    shape = _pair(params.get("output_shape"), "output_shape", int)
    return build_output_grid(
        footprints, first.wcs, first.meta,
        pixel_scale_ratio=params.get("pixel_scale_ratio", 1.0), pixel_scale=params.get("pixel_scale"),
        rotation=params.get("rotation"), crpix=_pair(params.get("crpix"), "crpix"),
        crval=_pair(params.get("crval"), "crval"), shape=None if shape is None else shape[::-1])


def effective_ratio(grid, image, params: dict) -> float:
    """The ratio drizzle scales its kernel by: given, or output scale / input pixel scale."""
    if not params.get("pixel_scale") and not params.get("output_wcs"):
        return float(params.get("pixel_scale_ratio", 1.0))
    pixar_sr = image.meta.get("PIXAR_SR")
    if not pixar_sr:
        raise WebbcalError(image.path, "PIXAR_SR is needed to turn pixel_scale into a ratio; run photom")
    return float(grid.pscale * 3600.0 / (3600.0 * np.rad2deg(np.sqrt(float(pixar_sr)))))


def resample_images(images, params: dict):
    """Drizzle CalImages (already in memory) onto one grid → i2d Product."""
    grid = output_grid(images, params)
    ratio = effective_ratio(grid, images[0], params)
    resampler = Resampler(grid, kernel=params["kernel"], pixfrac=params["pixfrac"],
                          fillval=params["fillval"], weight_type=params["weight_type"],
                          pixel_scale_ratio=ratio, enable_ctx=params["enable_ctx"],
                          enable_var=params["report_var"], enable_err=params["enable_err"],
                          n_inputs=len(images), pixmap_stepsize=params["pixmap_stepsize"],
                          pixmap_order=params["pixmap_order"], propagate_dq=params["propagate_dq"])
    for image in images:
        resampler.add(ResampleInput.from_image(image))
    result = resampler.finalize()
    return i2d_product(result, grid, images[0].meta, bunit=images[0].bunit, pixfrac=params["pixfrac"],
                       weight_type=params["weight_type"], pixel_scale_ratio=ratio,
                       report_var=params["report_var"],
                       input_regions=[im.meta.get("S_REGION") for im in images])
