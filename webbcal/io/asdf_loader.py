"""``load_asdf()``: the ``asdf`` module, configured to start quickly.

The first time a process reads or writes an ASDF tree holding gwcs or astropy objects,
asdf loads every installed extension and resource mapping. Two costs there are avoidable:

* ~50 extension manifests parsed with pyyaml's pure-Python loader: the same documents
  parse to the same objects with its C loader (libyaml), 0.24 s less per process (asdf
  reads its schemas with the C loader already; only the manifests use ``yaml.safe_load``);
* where the official pipeline is installed beside webbcal, stpipe's resource mapping
  (its step-configuration schemas, which webbcal never reads) imports stpipe, crds and
  requests: 0.15 s per process.

Both are applied only when asdf's internals look as expected; otherwise asdf is left as
it is.
"""

from __future__ import annotations

import yaml

# Distributions whose asdf resources webbcal never reads.
UNUSED_RESOURCE_PACKAGES = frozenset({"stpipe"})

_configured = False


class _LibyamlSafeLoad:
    """Stands in for the ``yaml`` module inside asdf's manifest reader."""

    @staticmethod
    def safe_load(stream):
        return yaml.load(stream, Loader=yaml.CSafeLoader)


def load_asdf():
    """Import ``asdf`` (once per process, with the two start-up savings above)."""
    global _configured
    import asdf

    if not _configured:
        _configured = True
        _parse_manifests_with_libyaml()
        _skip_unused_resource_mappings(asdf)
    return asdf


def _parse_manifests_with_libyaml() -> None:
    try:
        from asdf.extension import _manifest
    except ImportError:
        return
    if getattr(yaml, "__with_libyaml__", False) and getattr(_manifest, "yaml", None) is yaml:
        _manifest.yaml = _LibyamlSafeLoad


def _skip_unused_resource_mappings(asdf) -> None:
    """Load the resource mappings as asdf would, without those of UNUSED_RESOURCE_PACKAGES."""
    try:
        from asdf import _entry_points
    except ImportError:
        return
    config = asdf.get_config()
    listing = getattr(_entry_points, "entry_points", None)
    if listing is None or getattr(config, "_resource_mappings", "absent") is not None:
        return  # already loaded, or not the asdf this was written for

    def without_unused(**kwargs):
        return [point for point in listing(**kwargs)
                if getattr(point.dist, "name", None) not in UNUSED_RESOURCE_PACKAGES]

    _entry_points.entry_points = without_unused
    try:
        config._resource_mappings = _entry_points.get_resource_mappings()
    finally:
        _entry_points.entry_points = listing
