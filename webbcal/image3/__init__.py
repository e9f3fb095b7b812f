"""Stage 3 imaging helpers: the exposure store that streams an association's members from
disk (``exposures``), footprints and overlap masks (``footprints``), clipped sky statistics
(``skystats``), the sectioned median of single drizzles (``median``) and blotting
(``blot``). The steps themselves are ``webbcal.steps.{skymatch,outlier_detection}``; the
chain is ``webbcal.pipeline.image3``.
"""
