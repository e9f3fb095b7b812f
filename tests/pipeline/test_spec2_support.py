"""Shared Spec2 test data: one simulated WFSS observation run up to its spec2 inputs, once.

``spec2_data`` simulates a program with a WFSS observation (one GRISMR exposure and its
direct image, F444W, full frame, MEDIUM2 x 3 groups = 215 s: 6 reads only so the dispersed sky has
enough counts for the official error-weighted background fit to be unbiased at 1 %),
then runs webbcal Detector1 on both, Image2 on the direct image and Image3 on its image3
association (catalog ``snr_threshold`` 10 to keep the catalog and the run short). The
spec2 association the simulator wrote then finds its science rate and ``sourcecat``
member next to it, as the official pipeline expects. Other test modules import the
fixture from here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

SEED = 3
_CACHE: dict = {}
# Few slits keep each spec2 run (and its cal file) small; the background mask still uses
# every catalog source.
FEW_SLITS = {"extract_2d": {"wfss_nbright": 15}}


@dataclass
class Spec2Data:
    root: Path
    asn: Path  # the spec2 association, next to its members
    rate: Path  # the grism rate (science member)
    catalog: Path  # the direct image's Image3 catalog (sourcecat member)
    refs: Path
    summary: dict  # truth/<acid>_wfss.json

    @property
    def grism(self) -> str:
        return self.summary["grism_exposures"][0]

    @property
    def injected_background(self) -> float:
        return float(self.summary["exposures"][self.grism]["background_scale_dn_s"])

    def copy_asn(self, folder: Path, drop: str | None = None, **members) -> Path:
        """The association and its members in ``folder``; ``drop`` an exptype, or rename
        members (``sourcecat="other.ecsv"``)."""
        folder.mkdir(parents=True, exist_ok=True)
        data = json.loads(self.asn.read_text())
        for item in data["products"]:
            item["members"] = [m for m in item["members"] if m["exptype"] != drop]
            for m in item["members"]:
                m["expname"] = members.get(m["exptype"], m["expname"])
        target = folder / self.asn.name
        target.write_text(json.dumps(data, indent=1))
        for path in (self.rate, self.catalog):
            if not (folder / path.name).exists():
                (folder / path.name).symlink_to(path)
        return target


def build(root: Path) -> Spec2Data:
    from webbcal.pipeline.detector1 import run_detector1
    from webbcal.pipeline.image2 import run_image2
    from webbcal.pipeline.image3 import run_image3
    from webbcal.simulate.program import settings_for, simulate_program

    settings = settings_for("demo", filter="F444W", readpatt="MEDIUM2", ngroups=3, ndither=1, source_density=60.0,
                            subarray="SUB160", wfss=True,
                            extra={"wfss_pupils": ["GRISMR"], "wfss_min_flux_jy": 3e-7})
    simulate_program(root, settings, seed=SEED)
    summary = json.loads(next((root / "truth").glob("o*_wfss.json")).read_text())
    asn_dir, refs = root / "asn", root / "refs"
    for name in summary["grism_exposures"] + summary["direct_exposures"]:
        run_detector1(root / "uncal" / f"{name}_uncal.fits", rate_path=asn_dir / f"{name}_rate.fits",
                      rateints_path=root / "scratch_rateints.fits", refs_dir=refs)
    for name in summary["direct_exposures"]:
        run_image2(asn_dir / f"{name}_rate.fits", refs_dir=refs)
    program = summary["direct_level3_root"].split("_")[0]
    run_image3(asn_dir / f"{program}_image3_00001_asn.json", asn_dir, refs_dir=refs,
               params={"source_catalog": {"snr_threshold": 10.0}})
    grism = summary["grism_exposures"][0]
    return Spec2Data(root=root, asn=asn_dir / f"{program}_spec2_00001_asn.json",
                     rate=asn_dir / f"{grism}_rate.fits",
                     catalog=asn_dir / f"{summary['direct_level3_root']}_cat.ecsv", refs=refs,
                     summary=summary)


@pytest.fixture(scope="session")
def spec2_data(tmp_path_factory) -> Spec2Data:
    if "data" not in _CACHE:
        root = tmp_path_factory.mktemp("spec2_data")
        try:
            _CACHE["data"] = build(root)
        except Exception:
            shutil.rmtree(root, ignore_errors=True)
            raise
    return _CACHE["data"]
