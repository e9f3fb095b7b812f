"""Draw a product's preview with matplotlib (imported here only, Agg canvas, no pyplot)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.preview.catalog import catalog_positions
from webbcal.preview.display import asinh_stretch, block_factor, block_mean, display_limits, inverse_asinh_stretch
from webbcal.preview.headers import image_plane, primary_keywords, scan_keywords
from webbcal.preview.slits import SLIT_KEYWORDS, boxes_from_headers, frame_shape, paste_slits, slit_boxes, slit_headers
from webbcal.preview.spectra import best_spectra, column_unit, read_spectra

DPI = 100
IMAGE_SIZE = (6.4, 5.6)  # inches: ~640 x 560 px
NAN_COLOUR = "#2f6db5"
SOURCE_COLOUR = "#e8412c"
ORDER_COLOURS = ("#e8412c", "#f2b01e", "#39b54a", "#b84fd6")
MAX_SPECTRUM_PANELS = 12
SPECTRUM_COLUMNS = 3


def render_preview(product_path, png_path, *, catalog=None, background=None) -> Path:
    """Write the preview PNG of ``product_path`` (picture chosen by its model class).

    ``catalog``: an Image3 ``*_cat.ecsv`` whose sources are circled on an image.
    ``background``: for a WFSS cal, the exposure's rate, drawn under the slit boxes
    (without it the grism image is rebuilt from the slits' own cut-outs).
    """
    model = primary_keywords(product_path, ("DATAMODL",)).get("DATAMODL")
    # Images and a grism cal drawn on its rate need a few headers and one plane: read
    # those directly (fast); spectra and the rest go through the full product reader.
    if model in ("ImageModel", "CubeModel"):
        title, data, unit = science_image(product_path)
        return save_png(image_figure(title, data, unit, catalog), png_path)
    if model == "MultiSlitModel" and background is not None:
        return save_png(grism_figure_on_rate(product_path, background), png_path)
    from webbcal.preview.reading import read_for_preview  # the full reader: astropy, asdf

    product = read_for_preview(product_path)
    if product.model in ("ImageModel", "CubeModel"):  # a file without DATAMODL
        if "SCI" not in product.arrays:
            raise WebbcalError(product_path, "no SCI image to show")
        unit = str(product.ext_meta.get("SCI", {}).get("BUNIT", ""))
        figure = image_figure(describe(product), science_plane(product), unit, catalog)
    elif product.model == "MultiSlitModel":
        figure = grism_figure_from_slits(product)
    elif product.model == "WFSSMultiSpecModel":
        figure = spectra_figure(product)
    else:
        raise WebbcalError(product_path, f"no preview for a {product.model}")
    return save_png(figure, png_path)


def science_image(path) -> tuple[str, np.ndarray, str]:
    """(title, SCI plane, BUNIT) of an image product, from its headers and one memory map."""
    headers = scan_keywords(path, (*TITLE_KEYWORDS, "BUNIT"))
    sci = next((h for h in headers[1:] if h.get("EXTNAME") == "SCI" and int(h.get("NAXIS", 0) or 0) >= 2), None)
    if sci is None:
        raise WebbcalError(path, "no SCI image to show")
    return title_of(Path(path).name, headers[0]), image_plane(path, sci), str(sci.get("BUNIT", "") or "")


def save_png(figure, png_path) -> Path:
    from webbcal.io.atomic import atomic_path

    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return png_path


def new_figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


TITLE_KEYWORDS = ("DETECTOR", "FILTER", "PUPIL", "EXP_TYPE")


def title_of(name: str, meta) -> str:
    """The file name and what was observed."""
    parts = [str(meta.get(k)) for k in TITLE_KEYWORDS if meta.get(k) not in (None, "")]
    return f"{name}\n{' '.join(parts)}" if parts else name


def describe(product) -> str:
    return title_of(product.path.name if product.path else "", product.meta)


# ------------------------------------------------------------------ images


def science_plane(product) -> np.ndarray:
    """SCI as a 2-D float image (a cube shows its first integration)."""
    sci = np.asarray(product.arrays["SCI"], dtype=np.float32)
    return sci[0] if sci.ndim == 3 else sci


def draw_image(figure, axes, data, unit: str):
    """The image with an asinh stretch between percentiles, NaNs coloured, a colour bar.

    Returns the binning factor; the axes are in the image's own 0-based pixels either way.
    """
    import matplotlib
    from matplotlib.colors import FuncNorm

    factor = block_factor(data.shape)
    shown = block_mean(data, factor)
    vmin, vmax = display_limits(shown)
    norm = FuncNorm((lambda v: asinh_stretch(v, vmin, vmax), lambda s: inverse_asinh_stretch(s, vmin, vmax)),
                    vmin=vmin, vmax=vmax)
    colours = matplotlib.colormaps["gray"].with_extremes(bad=NAN_COLOUR)
    extent = (-0.5, shown.shape[1] * factor - 0.5, -0.5, shown.shape[0] * factor - 0.5)
    picture = axes.imshow(shown, origin="lower", cmap=colours, norm=norm, extent=extent,
                          interpolation="nearest")
    axes.set_xlim(-0.5, data.shape[1] - 0.5)
    axes.set_ylim(-0.5, data.shape[0] - 0.5)
    axes.set_xlabel("x [pixel]")
    axes.set_ylabel("y [pixel]")
    bar = figure.colorbar(picture, ax=axes, shrink=0.9)
    bar.set_label(unit or "no BUNIT")
    return factor


def nan_note(data) -> str:
    bad = int(np.count_nonzero(~np.isfinite(data)))
    return f"NaN pixels ({bad}) in blue" if bad else "no NaN pixels"


def image_figure(title: str, data, unit: str, catalog=None):
    figure = new_figure(IMAGE_SIZE)
    axes = figure.add_subplot()
    draw_image(figure, axes, data, unit)
    notes = [nan_note(data)]
    if catalog is not None:
        x, y = catalog_positions(catalog)
        axes.scatter(x, y, s=60, facecolors="none", edgecolors=SOURCE_COLOUR, linewidths=1.2)
        notes.append(f"{x.size} catalog sources circled")
    axes.set_title(f"{title}\n{'; '.join(notes)}", fontsize=9)
    return figure


# ------------------------------------------------------------------ WFSS


def grism_figure_on_rate(cal_path, rate_path):
    """The slit boxes of a WFSS cal (from its headers alone) on the exposure's rate."""
    headers = scan_keywords(cal_path, (*SLIT_KEYWORDS, *TITLE_KEYWORDS))
    boxes = boxes_from_headers(slit_headers(headers), cal_path)
    if primary_keywords(rate_path, ("DATAMODL",)).get("DATAMODL") != "ImageModel":
        raise WebbcalError(rate_path, "expected the exposure's rate (an ImageModel)")
    _, rate, unit = science_image(rate_path)
    title = title_of(Path(cal_path).name, headers[0])
    return grism_figure(title, boxes, rate, unit, f"under them: {Path(rate_path).name}")


def grism_figure_from_slits(product):
    """The slit boxes on the grism image rebuilt from the slits' own cut-outs."""
    boxes = slit_boxes(product)
    data = paste_slits(product, boxes, frame_shape(product, boxes))
    first = f"SCI,{product.slit_numbers()[0]}" if product.slit_numbers() else "SCI,1"
    unit = str(product.ext_meta.get(first, {}).get("BUNIT", ""))
    return grism_figure(describe(product), boxes, data, unit, "the slits' cut-outs")


def grism_figure(title: str, boxes, data, unit: str, under: str):
    """The grism image with each slit's extraction box, coloured by spectral order."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    figure = new_figure(IMAGE_SIZE)
    axes = figure.add_subplot()
    draw_image(figure, axes, data, unit)
    orders = sorted({b.order for b in boxes}, key=lambda o: (o is None, o or 0))
    colour_of = {order: ORDER_COLOURS[i % len(ORDER_COLOURS)] for i, order in enumerate(orders)}
    rectangles = [Rectangle((b.x0 - 0.5, b.y0 - 0.5), b.width, b.height) for b in boxes]
    # Hundreds of slits on a full frame: thinner lines keep the image under them visible.
    axes.add_collection(PatchCollection(rectangles, facecolors="none", linewidths=0.7 if len(boxes) < 100 else 0.3,
                                        edgecolors=[colour_of[b.order] for b in boxes]))
    if orders:
        handles = [Patch(facecolor="none", edgecolor=colour_of[o], label=f"order {o}" if o is not None else "order ?")
                   for o in orders]
        axes.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.6)
    axes.set_title(f"{title}\n{len(boxes)} extraction boxes; {under}", fontsize=9)
    return figure


def _robust_ylim(axes, flux) -> None:
    """y range from the 2-98 percentiles: the noisy ends of an order (where the response
    is small) would otherwise flatten the spectrum into a line."""
    finite = flux[np.isfinite(flux)]
    if finite.size < 10:
        return
    low, high = np.percentile(finite, [2, 98])
    pad = 0.15 * (high - low) or abs(high) * 0.1 or 1.0
    axes.set_ylim(low - pad, high + pad)


def spectra_figure(product):
    """Flux against wavelength with a 1-sigma band, one panel per spectrum (the best few)."""
    spectra = read_spectra(product)
    if not spectra:
        raise WebbcalError(product.path, "no spectra to plot")
    shown = best_spectra(spectra, MAX_SPECTRUM_PANELS)
    first = next(k for k in sorted(product.tables) if k.startswith("EXTRACT1D"))
    wave_unit = column_unit(product, first, "WAVELENGTH") or "?"
    flux_unit = column_unit(product, first, "FLUX") or "?"

    columns = min(SPECTRUM_COLUMNS, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure = new_figure((3.2 * columns, 2.2 * rows + 0.6))
    for index, spectrum in enumerate(shown):
        axes = figure.add_subplot(rows, columns, index + 1)
        low, high = spectrum.flux - spectrum.error, spectrum.flux + spectrum.error
        axes.fill_between(spectrum.wavelength, low, high, step="mid", color="#9cc3e6", linewidth=0)
        axes.step(spectrum.wavelength, spectrum.flux, where="mid", color="#1b4f8a", linewidth=0.8)
        order = "" if spectrum.order is None else f", order {spectrum.order}"
        _robust_ylim(axes, spectrum.flux)
        axes.set_title(f"source {spectrum.source_id}{order}", fontsize=8)
        axes.tick_params(labelsize=7)
        if index % columns == 0:
            axes.set_ylabel(f"flux [{flux_unit}]", fontsize=7)
        if index >= len(shown) - columns:
            axes.set_xlabel(f"wavelength [{wave_unit}]", fontsize=7)
    what = f"{len(shown)} of {len(spectra)} spectra (highest median S/N)" if len(shown) < len(spectra) else f"{len(spectra)} spectra"
    figure.suptitle(f"{product.path.name if product.path else ''}: {what}", fontsize=9)
    return figure
