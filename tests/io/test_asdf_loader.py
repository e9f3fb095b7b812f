"""load_asdf: manifests parsed by libyaml give asdf exactly the extensions it had before."""

import json
import subprocess
import sys

import pytest
import yaml

EXTENSION_SUMMARY = r"""
import json, sys
if sys.argv[1] == "webbcal":
    from webbcal.io.asdf_loader import load_asdf
    asdf = load_asdf()
else:
    import asdf
summary = sorted(
    [ext.extension_uri or "", ext.package_name or "",
     sorted(tag.tag_uri for tag in ext.tags),
     sorted(type(c.delegate).__name__ for c in ext.converters)]
    for ext in asdf.get_config().extensions)
print(json.dumps(summary))
"""


def _extensions(mode: str):
    out = subprocess.run([sys.executable, "-c", EXTENSION_SUMMARY, mode], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


pytestmark = pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False),
                                reason="pyyaml built without libyaml")


def test_libyaml_manifests_give_the_same_extensions():
    plain, patched = _extensions("plain"), _extensions("webbcal")
    assert len(plain) > 10  # asdf core, asdf-astropy, gwcs at least
    assert patched == plain


def test_manifest_reader_uses_libyaml_after_load_asdf():
    from asdf.extension import _manifest

    from webbcal.io.asdf_loader import load_asdf

    load_asdf()
    assert _manifest.yaml is not yaml
    assert _manifest.yaml.safe_load("a: [1, 2]\n") == {"a": [1, 2]}


UNUSED_PACKAGES_CHECK = r"""
import sys
from webbcal.io.asdf_loader import load_asdf
asdf = load_asdf()
asdf.get_config().extensions
manager = asdf.get_config().resource_manager
assert "http://stsci.edu/schemas/asdf/transform/polynomial-1.2.0" in manager
assert "http://stsci.edu/schemas/gwcs/wcs-1.2.0" in manager
packages = {m.package_name for m in asdf.get_config().resource_mappings}
print("stpipe" in sys.modules, "stpipe" in packages, len(packages))
"""


def test_stpipe_resources_are_not_loaded_but_the_transform_and_gwcs_schemas_are():
    from importlib.metadata import entry_points

    out = subprocess.run([sys.executable, "-c", UNUSED_PACKAGES_CHECK], check=True,
                         capture_output=True, text=True).stdout.split()
    assert out[:2] == ["False", "False"]
    installed = {e.dist.name for e in entry_points(group="asdf.resource_mappings")}
    assert int(out[2]) == len(installed - {"stpipe"})
