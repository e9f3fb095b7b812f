import json
from importlib import metadata

from webbcal.preview.run_info import parameter_rows, software_versions, write_run_info


def test_software_versions_are_the_installed_ones():
    versions = software_versions(("numpy", "no-such-package-xyz"))
    assert versions["numpy"] == metadata.version("numpy")
    assert versions["no-such-package-xyz"] == "not installed"
    assert versions["python"].count(".") == 2


def test_run_page_lists_every_parameter_and_version(tmp_path):
    parameters = {"detector1": {"jump": {"rejection_threshold": 5.5, "skip": False}},
                  "image3": {"source_catalog": {"kron_params": None}}}
    assert parameter_rows(parameters) == [("detector1", "jump", "rejection_threshold", "5.5"),
                                          ("detector1", "jump", "skip", "false"),
                                          ("image3", "source_catalog", "kron_params", "null")]
    page = write_run_info(tmp_path / "run_info.html", parameters, {"numpy": "2.0 <&>"}).read_text()
    assert "<td>rejection_threshold</td><td>5.5</td>" in page
    assert "<td>numpy</td><td>2.0 &lt;&amp;&gt;</td>" in page  # escaped
    assert page.startswith("<!DOCTYPE html>") and json.dumps(None) in page
