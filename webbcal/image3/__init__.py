"""Stage 3 imaging helpers: the exposure store that streams an association's members from
disk (``exposures``), footprints and overlap masks (``footprints``), clipped sky statistics
(``skystats``), the sectioned median of single drizzles (``median``), blotting (``blot``),
star finding and relative fits (``align``), alignment to a reference catalog
(``absolute``), the source catalog (``catalog``) and the mosaic's header table
(``hdrtab``). The steps themselves are ``webbcal.steps.{tweakreg,skymatch,
outlier_detection,source_catalog}``; the chain is ``webbcal.pipeline.image3``.
"""
