"""Provenance: keywords the official schema knows, sha256 of references, validation still passes."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import numpy as np

import webbcal
from webbcal.io.product import read_product, write_product
from webbcal.io.provenance import REFERENCE_KEYWORDS, stamp_provenance

from io_builders import datamodels, make_cal, make_ramp  # noqa: F401 (fixture)


def _core_schema_keywords(datamodels) -> set[str]:
    core = Path(datamodels.__file__).parent / "schemas" / "core.schema.yaml"
    return set(re.findall(r"fits_keyword: (\S+)", core.read_text()))


def _refs(tmp_path, *types):
    paths = {}
    for i, reftype in enumerate(types):
        path = tmp_path / f"jwst_nircam_{reftype}_{i:04d}.fits"
        path.write_bytes(bytes([i]) * (1000 + i))
        paths[reftype] = path
    return paths


def test_reference_keywords_are_the_official_ones(datamodels):
    known = _core_schema_keywords(datamodels)
    # apcorr and abvegaoffset have no ref_file entry in core.schema (jwst does not record them)
    missing = {kw for rt, kw in REFERENCE_KEYWORDS.items() if kw not in known}
    assert missing == {"R_APCORR", "R_ABVEGA"}
    for keyword in ("CAL_VER", "CAL_VCS", "DATE"):
        assert keyword in known


def test_stamp_writes_keywords_tree_and_history(tmp_path, datamodels):
    refs = _refs(tmp_path, "flat", "photom", "area", "distortion", "apcorr")
    product = make_cal()
    params = {"flat_field": {"skip": False}, "photom": {"inverse": False, "source_type": None},
              "resample": {"pixfrac": np.float32(0.75), "output_dir": tmp_path}}
    record = stamp_provenance(product.meta, product.tree, step_params=params, references=refs,
                              inputs=[tmp_path / "jw01_rate.fits"])
    assert product.meta["R_FLAT"] == "jwst_nircam_flat_0000.fits"
    assert product.meta["R_DISTOR"] == "jwst_nircam_distortion_0003.fits"
    assert product.meta["R_APCORR"] == "jwst_nircam_apcorr_0004.fits"
    assert product.meta["CAL_VER"] == webbcal.__version__
    assert record["references"]["photom"]["sha256"] == hashlib.sha256(refs["photom"].read_bytes()).hexdigest()
    assert record["parameters"]["resample"]["pixfrac"] == 0.75
    history = "\n".join(str(v) for v in product.meta["HISTORY"])
    assert "jwst_nircam_area_0002.fits" in history and "jw01_rate.fits" in history

    path = write_product(product, tmp_path / "jw01_cal.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        with datamodels.open(path, strict_validation=True) as model:
            model.validate()
            assert model.meta.ref_file.flat.name == "jwst_nircam_flat_0000.fits"
            assert model.meta.ref_file.distortion.name == "jwst_nircam_distortion_0003.fits"
            assert model.meta.calibration_software_version == webbcal.__version__

    back = read_product(path)
    stored = back.tree["meta"]["webbcal"]["provenance"]
    assert len(stored) == 1 and stored[0]["inputs"] == ["jw01_rate.fits"]
    assert stored[0]["references"]["area"]["sha256"] == hashlib.sha256(refs["area"].read_bytes()).hexdigest()
    assert stored[0]["parameters"]["resample"]["output_dir"] == str(tmp_path)


def test_stamps_accumulate_across_stages(tmp_path):
    refs = _refs(tmp_path, "mask", "dark")
    ramp = make_ramp()
    stamp_provenance(ramp.meta, ramp.tree, step_params={"jump": {"rejection_threshold": 4.0}},
                     references={"mask": refs["mask"]}, inputs=["a_uncal.fits"])
    stamp_provenance(ramp.meta, ramp.tree, step_params={}, references={"dark": refs["dark"]}, inputs=["a_ramp.fits"])
    back = read_product(write_product(ramp, tmp_path / "a_ramp.fits"))
    records = back.tree["meta"]["webbcal"]["provenance"]
    assert [r["inputs"] for r in records] == [["a_uncal.fits"], ["a_ramp.fits"]]
    assert back.meta["R_MASK"] == "jwst_nircam_mask_0000.fits" and back.meta["R_DARK"] == "jwst_nircam_dark_0001.fits"


def test_missing_reference_file_is_recorded_without_checksum(tmp_path):
    product = make_ramp()
    record = stamp_provenance(product.meta, product.tree, step_params={},
                              references={"gain": tmp_path / "gone_gain.fits"}, inputs=[])
    assert record["references"]["gain"] == {"name": "gone_gain.fits", "path": str(tmp_path / "gone_gain.fits"),
                                            "sha256": None}
    assert product.meta["R_GAIN"] == "gone_gain.fits"
    read_product(write_product(product, tmp_path / "g_ramp.fits"))  # None serialises fine
