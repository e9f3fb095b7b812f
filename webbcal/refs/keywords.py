"""FITS keywords of reference files and where they live in an ASDF reference's ``meta`` tree.

FITS references keep their metadata as primary-header keywords; ASDF references (distortion,
filteroffset, specwcs, wavelengthrange, abvegaoffset) keep the same values in a nested
``meta`` dictionary following the stdatamodels schema paths. This table converts both ways,
so the cache can index either kind by the same keyword names.
"""

from __future__ import annotations

# keyword -> path below the tree's ``meta`` (stdatamodels schema names)
META_PATHS: dict[str, tuple[str, ...]] = {
    "DATE": ("date",),
    "ORIGIN": ("origin",),
    "FILENAME": ("filename",),
    "DATAMODL": ("model_type",),
    "TELESCOP": ("telescope",),
    "REFTYPE": ("reftype",),
    "PEDIGREE": ("pedigree",),
    "DESCRIP": ("description",),
    "AUTHOR": ("author",),
    "USEAFTER": ("useafter",),
    "INSTRUME": ("instrument", "name"),
    "DETECTOR": ("instrument", "detector"),
    "FILTER": ("instrument", "filter"),
    "PUPIL": ("instrument", "pupil"),
    "CHANNEL": ("instrument", "channel"),
    "MODULE": ("instrument", "module"),
    "BAND": ("instrument", "band"),
    "GRATING": ("instrument", "grating"),
    "P_DETECT": ("instrument", "p_detector"),
    "P_FILTER": ("instrument", "p_filter"),
    "P_PUPIL": ("instrument", "p_pupil"),
    "P_CHANNE": ("instrument", "p_channel"),
    "P_BAND": ("instrument", "p_band"),
    "P_GRATIN": ("instrument", "p_grating"),
    "EXP_TYPE": ("exposure", "type"),
    "P_EXP_TY": ("exposure", "p_exptype"),
    "READPATT": ("exposure", "readpatt"),
    "P_READPA": ("exposure", "p_readpatt"),
    "NOUTPUTS": ("exposure", "noutputs"),
    "NFRAMES": ("exposure", "nframes"),
    "NGROUPS": ("exposure", "ngroups"),
    "GROUPGAP": ("exposure", "groupgap"),
    "GAINFACT": ("exposure", "gain_factor"),
    "AVDRKCUR": ("exposure", "average_dark_current"),
    "SUBARRAY": ("subarray", "name"),
    "P_SUBARR": ("subarray", "p_subarray"),
    "SUBSTRT1": ("subarray", "xstart"),
    "SUBSTRT2": ("subarray", "ystart"),
    "SUBSIZE1": ("subarray", "xsize"),
    "SUBSIZE2": ("subarray", "ysize"),
    "FASTAXIS": ("subarray", "fastaxis"),
    "SLOWAXIS": ("subarray", "slowaxis"),
    "PIXAR_SR": ("photometry", "pixelarea_steradians"),
    "PIXAR_A2": ("photometry", "pixelarea_arcsecsq"),
}

# CRDS "pattern" keywords: an OR-list ``A|B|C|`` of values a reference also serves.
PATTERN_KEYWORDS: dict[str, str] = {
    "DETECTOR": "P_DETECT",
    "FILTER": "P_FILTER",
    "PUPIL": "P_PUPIL",
    "CHANNEL": "P_CHANNE",
    "BAND": "P_BAND",
    "GRATING": "P_GRATIN",
    "EXP_TYPE": "P_EXP_TY",
    "READPATT": "P_READPA",
    "SUBARRAY": "P_SUBARR",
}


def keywords_to_meta(keywords: dict) -> dict:
    """Nest FITS-keyword values into a stdatamodels ``meta`` tree (unknown keys dropped)."""
    meta: dict = {}
    for key, value in keywords.items():
        path = META_PATHS.get(key.upper())
        if path is None or value is None:
            continue
        node = meta
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return meta


def meta_to_keywords(meta: dict) -> dict:
    """Flatten a stdatamodels ``meta`` tree back into FITS-keyword values."""
    out = {}
    for key, path in META_PATHS.items():
        node = meta
        for part in path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            out[key] = node
    return out
