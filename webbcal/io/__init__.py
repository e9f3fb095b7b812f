"""JWST DMS files: reading and writing every product family webbcal handles.

The in-memory form of any file is a ``Product`` (see ``product.py``): the model class
name (``DATAMODL``), the primary-header keywords (``meta``, an astropy Header: this is
the metadata the steps use), image arrays by EXTNAME, per-extension keywords (BUNIT),
binary tables by EXTNAME, and ``tree``: metadata that lives only in the ASDF extension
(the gwcs WCS under ``tree["meta"]["wcs"]``).

Modules: ``product`` (Product, read/write), ``layouts`` (extensions of each model class,
``register_layout``), ``validate`` (layout checks), ``lazy`` (memory maps, ``read_section``),
``asdf_ext`` (the ASDF extension), ``provenance`` (``stamp_provenance``), ``atomic``.
"""

_LAZY = {
    "Product": "product",
    "read_product": "product",
    "write_product": "product",
    "read_section": "lazy",
    "register_layout": "layouts",
    "Layout": "layouts",
    "Extension": "layouts",
    "stamp_provenance": "provenance",
}


def __getattr__(name):
    # Imported on first use so that light modules (atomic writes) load without astropy.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"webbcal.io.{_LAZY[name]}"), name)
    raise AttributeError(name)
