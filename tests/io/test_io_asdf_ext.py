"""The ASDF extension codec: gwcs, embedded arrays and plain metadata survive a round trip."""

from __future__ import annotations

import numpy as np

from webbcal.io import asdf_ext

from io_builders import imaging_wcs


def test_tree_round_trip_restores_objects():
    wcs = imaging_wcs()
    tree = {
        "meta": {
            "wcs": wcs,
            "exposure": {"read_times": np.linspace(0.0, 107.4, 5)},
            "webbcal": {"provenance": [{"inputs": ["a.fits"], "parameters": {"n": np.int64(3), "t": (1, 2)}}]},
        },
    }
    back = asdf_ext.decode_tree(asdf_ext.encode_tree(tree))
    assert set(back) == {"meta"}
    np.testing.assert_array_equal(back["meta"]["exposure"]["read_times"], np.linspace(0.0, 107.4, 5))
    assert isinstance(back["meta"]["exposure"]["read_times"], np.ndarray)
    assert back["meta"]["webbcal"]["provenance"][0]["parameters"] == {"n": 3, "t": [1, 2]}
    x, y = np.meshgrid(np.arange(12.0), np.arange(16.0))
    np.testing.assert_array_equal(np.array(back["meta"]["wcs"](x, y)), np.array(wcs(x, y)))


def test_hdu_layout_matches_stdatamodels():
    hdu = asdf_ext.tree_hdu({"meta": {"a": 1}})
    assert hdu.name == "ASDF" and hdu.columns.names == ["ASDF_METADATA"]
    raw = hdu.data["ASDF_METADATA"][0].tobytes()
    assert raw.startswith(b"#ASDF") and len(hdu.data) == 1
    assert asdf_ext.decode_tree(raw) == {"meta": {"a": 1}}
