"""webbcal: the JWST Science Calibration Pipeline as a Snakemake workflow.

Reading order: ``webbcal.io`` (DMS files) and ``webbcal.refs`` (reference cache),
``webbcal.steps`` (one module per calibration step: parameters + pure array function),
``webbcal.pipeline`` (stages chaining steps), ``webbcal.simulate`` (the built-in NIRCam
simulator), ``webbcal.cli`` (the ``webbcal`` command).
"""

__version__ = "0.1.0"
