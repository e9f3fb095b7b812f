"""Drizzle resampling onto a common sky grid, for Image2 (one exposure) and Image3 (mosaics).

* ``grid``: the output WCS (TAN, from the inputs' S_REGION footprints and the resample
  parameters, spec image2_image3_wfss.md §3.4 "Output WCS"), or one read from an ASDF file.
* ``pixmap``: input pixel → output pixel maps through the two gwcs objects.
* ``drizzler``: ``Resampler``, one output-size accumulator (SCI, WHT, CON, variance sums)
  fed one input at a time with the ``drizzle`` package's C kernel; memory is bounded by the
  output size plus one input, whatever the number of inputs.
* ``square`` (C extension ``_square``): the square kernel applied to SCI and the three
  sqrt(VAR_*) planes in one pass over the input pixels (one geometry computation instead
  of four), bit-identical to ``drizzle``; optional at build time.
* ``product``: the i2d Product (arrays, keywords, gwcs) of a finished Resampler.

The engine is the ``drizzle`` package (Fruchter & Hook 2002; STScI's C implementation,
the one the official pipeline calls), so pixel weights, kernels and flux conservation are
those of the field's reference code; ``square`` reproduces its square kernel exactly and
is tested against it.
"""

from webbcal.resample.drizzler import ResampleInput, Resampler, ResampleResult  # noqa: F401
from webbcal.resample.grid import OutputGrid, build_output_grid, grid_from_wcs  # noqa: F401
