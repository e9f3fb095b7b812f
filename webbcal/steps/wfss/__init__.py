"""Spec2 steps for NIRCam WFSS (stage ``spec2``), in the official NRC_WFSS order.

assign_wcs, bkg_subtract, flat_field, extract_2d, srctype, photom, extract_1d
(spec image2_image3_wfss.md §4.1). A sub-package because Image2 already has steps named
assign_wcs, flat_field and photom; the WFSS ones reuse their imaging parts.
"""
