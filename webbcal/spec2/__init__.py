"""NIRCam WFSS building blocks: grism dispersion, source catalog, boxes, slits, spectra.

* ``grism_wcs``: the SPECWCS dispersion polynomials, forward/backward, vectorised.
* ``catalog``: the Image3 source catalog (``*_cat.ecsv``) as arrays.
* ``boxes``: the official extract_2d bounding box of every source and order.
* ``slits``: the cut-outs (``GrismSlit``) and the MultiSlitModel cal product.
* ``spectra``: box extraction and the WFSSMultiSpecModel x1d product.

The steps that use them are ``webbcal.steps.wfss``.
"""
