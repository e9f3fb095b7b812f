"""Spec2 in the registry and the configuration: stage-aware step lookup, every parameter
declared once, the official bkg_subtract defaults, settings validation."""

from __future__ import annotations

import pytest

from webbcal import config as wconfig
from webbcal.errors import WebbcalError
from webbcal.steps import registry


def test_names_shared_by_stages_resolve_per_stage():
    assert registry.step_module("assign_wcs").__name__ == "webbcal.steps.assign_wcs"
    assert registry.step_module("spec2.assign_wcs").__name__ == "webbcal.steps.wfss.assign_wcs"
    assert registry.step_module("bkg_subtract").__name__ == "webbcal.steps.wfss.bkg_subtract"
    assert [m.SPEC.name for m in registry.stage_steps("spec2")] == list(registry.STAGES["spec2"])
    assert all(m.SPEC.stage == "spec2" for m in registry.stage_steps("spec2"))
    assert registry.stage_spec("spec2", "flat_field").stage == "spec2"
    assert registry.stage_spec("image2", "flat_field").stage == "image2"
    assert registry.stages_of("photom") == ["image2", "spec2"]
    with pytest.raises(KeyError, match="unknown step 'spec2.tweakreg'"):
        registry.step_module("spec2.tweakreg")


def test_official_step_order_and_bkg_subtract_defaults():
    assert registry.STAGES["spec2"] == ("assign_wcs", "bkg_subtract", "flat_field", "extract_2d",
                                        "srctype", "photom", "extract_1d")
    spec = registry.stage_spec("spec2", "bkg_subtract")
    assert spec.status_key == "S_BKDSUB" and spec.reftypes == ("bkg", "wavelengthrange")
    # jwst 3.0 BackgroundStep.spec, in its order
    assert spec.defaults() == {
        "bkg_list": None, "save_combined_background": False, "sigma": 3.0, "maxiters": None,
        "soss_source_percentile": 35.0, "soss_bkg_percentile": None, "wfss_mmag_extract": None,
        "wfss_mask": None, "wfss_maxiter": 5, "wfss_rms_stop": 0.0, "wfss_outlier_percent": 1.0}
    flat = registry.stage_spec("spec2", "flat_field")
    assert flat.params == registry.stage_spec("image2", "flat_field").params


def test_spec2_section_of_the_config():
    defaults = wconfig.default_config()
    steps = defaults["spec2"]["steps"]
    assert list(steps) == list(registry.STAGES["spec2"])
    assert steps["bkg_subtract"]["wfss_maxiter"] == 5 and steps["bkg_subtract"]["override_bkg"] is None
    assert "override_specwcs" in steps["assign_wcs"]  # spec2's assign_wcs, not image2's
    assert "override_specwcs" not in defaults["image2"]["steps"]["assign_wcs"]
    stage = wconfig.stage_params(wconfig.resolve_config({"spec2": {"steps": {"srctype": {"skip": True}}}}),
                                 "spec2")
    assert stage["srctype"] == {"skip": True}
    with pytest.raises(WebbcalError, match="spec2.steps.bkg_subtract.wfss_maxiter"):
        wconfig.resolve_config({"spec2": {"steps": {"bkg_subtract": {"wfss_maxiter": "x"}}}})


def test_settings_reject_unknown_steps_and_values():
    from webbcal.pipeline.spec2 import resolve_settings

    settings = resolve_settings({"bkg_subtract": {"wfss_maxiter": "3", "override_bkg": "b.fits"},
                                 "flat_field": {"user_supplied_flat": "f.fits"}})
    assert settings["bkg_subtract"].params["wfss_maxiter"] == 3
    assert settings["bkg_subtract"].overrides == {"bkg": "b.fits"}
    assert settings["flat_field"].overrides == {"flat": "f.fits"}
    with pytest.raises(WebbcalError, match="unknown spec2 step 'tweakreg'"):
        resolve_settings({"tweakreg": {}})
    with pytest.raises(WebbcalError, match="spec2.bkg_subtract: step bkg_subtract has no parameter 'nope'"):
        resolve_settings({"bkg_subtract": {"nope": 1}})
