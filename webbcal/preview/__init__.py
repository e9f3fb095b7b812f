"""Small PNG previews of webbcal products, for a glance and for the Snakemake report.

``render_preview(product, png)`` picks the picture from the file's model class:

    ImageModel (rate, cal, i2d)   the image, asinh stretch between percentiles, NaNs in
                                  colour, a colour bar in the product's BUNIT; a mosaic's
                                  catalog sources circled when ``catalog`` is given
    MultiSlitModel (WFSS cal)     the grism image with each slit's extraction box
    WFSSMultiSpecModel (x1d)      flux against wavelength, with errors, a panel per spectrum

matplotlib (and astropy) are imported only when a picture is drawn (Agg canvas, no
display needed), so importing webbcal, or the workflow reading ``run_info``, never pays
for them. The array work (downsampling, display limits, slit boxes, spectra) is plain
numpy in ``display``, ``slits`` and ``spectra``, tested without drawing.
"""

from __future__ import annotations


def render_preview(product_path, png_path, *, catalog=None, background=None):
    """Write the preview PNG of a product; see ``webbcal.preview.render.render_preview``."""
    from webbcal.preview.render import render_preview as render

    return render(product_path, png_path, catalog=catalog, background=background)


__all__ = ["render_preview"]
