"""The built-in NIRCam simulator: the default input of the workflow and the truth of its tests.

Modules, in the order data flows through them:

* ``scene``: sky catalog (stars, Sérsic galaxies, SEDs with emission lines), sky levels;
* ``psf``: Moffat PSFs with analytic encircled energy, pixel-integrated rendering;
* ``readout``: read patterns, subarrays, frame/group times, timing keywords;
* ``detector``: H2RG physics, ``simulate_ramps(rate_dn_s, setup, state, rng)``;
* ``references``: every reference file describing the simulated detector and optics;
* ``program``: dithered exposures, uncal files, associations and truth
  (``simulate_program``); ``grism``/``wfss``: the WFSS part (separate owner).

Pointing and distortion math shared with the pipeline lives in ``webbcal.wcs``.
"""
