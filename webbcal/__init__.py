"""webbcal: the JWST Science Calibration Pipeline as a Snakemake workflow.

Reading order: ``webbcal.io`` (DMS files) and ``webbcal.refs`` (reference cache),
``webbcal.steps`` (one module per calibration step: parameters + pure array function),
``webbcal.pipeline`` (stages chaining steps), ``webbcal.simulate`` (the built-in NIRCam
simulator), ``webbcal.cli`` (the ``webbcal`` command).
"""

__version__ = "0.1.0"

import atexit as _atexit
import gc as _gc

# At exit, Python's last garbage collection walks every astropy/gwcs/asdf object a run has
# created: 0.2-0.4 s of a 3-4 s command. Freezing them first skips that walk; exit
# handlers and module teardown still run (outputs are closed and renamed long before).
_atexit.register(_gc.freeze)
