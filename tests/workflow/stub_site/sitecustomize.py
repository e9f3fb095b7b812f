"""Loaded by every Python process of a test workflow run (put on PYTHONPATH).

With WEBBCAL_STUB_DETECTOR1 set it replaces ``webbcal.pipeline.detector1`` by a stub
whose ``run_detector1`` writes, into each product, the JSON of the arguments it got; with
WEBBCAL_STUB_SIMULATE set, ``webbcal.simulate.program`` by a stub writing two placeholder
exposures and the arguments it got; with WEBBCAL_STUB_PREVIEW set, previews are JSON
records of their inputs. The workflow's own behaviour (DAG, checkpoint, params,
reruns, argument passing) is then tested in seconds, without real data.
"""

import json
import os
import sys
import types
from pathlib import Path

if os.environ.get("WEBBCAL_STUB_DETECTOR1"):
    stub = types.ModuleType("webbcal.pipeline.detector1")

    def run_detector1(uncal_path, *, rate_path=None, rateints_path=None, ramp_path=None,
                      params=None, refs_dir=None):
        record = {"uncal": str(uncal_path), "params": params, "refs_dir": refs_dir}
        for path in (rate_path, rateints_path, ramp_path):
            if path:
                Path(path).write_text(json.dumps(record))

    stub.run_detector1 = run_detector1
    sys.modules["webbcal.pipeline.detector1"] = stub

if os.environ.get("WEBBCAL_STUB_SIMULATE"):
    stub = types.ModuleType("webbcal.simulate.program")

    def simulate_program(outdir, settings, seed):
        outdir = Path(outdir)
        for folder in ("uncal", "refs", "asn", "truth"):
            (outdir / folder).mkdir(parents=True, exist_ok=True)
        for number in (1, 2):
            name = f"jw09999001001_01101_0000{number}_nrcb1_uncal.fits"
            (outdir / "uncal" / name).write_text("placeholder")
        record = {"settings": settings, "seed": seed}
        (outdir / "refs" / "manifest.json").write_text(json.dumps(record))

    def settings_for(preset=None, **overrides):
        return {"preset": preset, **overrides}

    stub.simulate_program = simulate_program
    stub.settings_for = settings_for
    sys.modules["webbcal.simulate.program"] = stub

if os.environ.get("WEBBCAL_STUB_PREVIEW"):
    stub = types.ModuleType("webbcal.preview.render")

    def render_preview(product_path, png_path, *, catalog=None, background=None):
        record = {"product": str(product_path), "catalog": catalog and str(catalog),
                  "background": background and str(background)}
        Path(png_path).write_text(json.dumps(record))

    stub.render_preview = render_preview
    sys.modules["webbcal.preview.render"] = stub
