"""Layouts agree with the stdatamodels schemas; reference models can be registered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from webbcal.errors import WebbcalError
from webbcal.io import layouts
from webbcal.io.layouts import Extension, Layout, register_layout
from webbcal.io.product import Product, read_product, write_product

from io_builders import datamodels  # noqa: F401 (fixture)


def _schema(datamodels, name):
    return yaml.safe_load((Path(datamodels.__file__).parent / "schemas" / name).read_text())


def test_table_columns_match_schemas(datamodels):
    group = _schema(datamodels, "group.schema.yaml")["properties"]["group"]["datatype"]
    int_times = _schema(datamodels, "int_times.schema.yaml")["properties"]["int_times"]["datatype"]
    for ours, theirs in ((layouts.GROUP_COLUMNS, group), (layouts.INT_TIMES_COLUMNS, int_times)):
        assert [name for name, _ in ours] == [col["name"] for col in theirs]
        for (_, dtype), col in zip(ours, theirs):
            kind = col["datatype"]
            expected = f"S{kind[1]}" if isinstance(kind, list) else np.dtype(kind).str[1:]
            assert np.dtype(dtype).str[1:] == expected, col["name"]
    spectable = _schema(datamodels, "wfss_spectable.schema.yaml")["datatype"]
    dtype = layouts.wfss_spectable_dtype(4)
    assert list(dtype.names) == [col["name"] for col in spectable]
    for col in spectable:
        kind = col["datatype"]
        expected = np.dtype(f"S{kind[1]}") if isinstance(kind, list) else np.dtype(kind)
        assert dtype[col["name"]].base == expected, col["name"]


@pytest.mark.parametrize("schema_file, model, hdus", [
    ("image.schema.yaml", "ImageModel", ("SCI", "DQ", "ERR", "AREA", "CON", "WHT")),
    ("ramp.schema.yaml", "RampModel", ("SCI", "PIXELDQ", "GROUPDQ", "ZEROFRAME", "AVDRKCUR")),
    ("level1b.schema.yaml", "Level1bModel", ("SCI", "ZEROFRAME")),
    ("cube.schema.yaml", "CubeModel", ("SCI", "DQ", "ERR")),
    ("segmap.schema.yaml", "SegmentationMapModel", ("SCI",)),
])
def test_image_dtypes_match_schemas(datamodels, schema_file, model, hdus):
    schema = _schema(datamodels, schema_file)
    found = {}

    def walk(node):
        if isinstance(node, dict):
            if "fits_hdu" in node and isinstance(node.get("datatype"), str):
                found[node["fits_hdu"]] = node["datatype"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    layout = layouts.get_layout(model)
    for hdu in hdus:
        assert layout.extension(hdu).dtype == found[hdu], hdu


def test_register_layout_for_a_reference_model(tmp_path, monkeypatch):
    monkeypatch.setitem(layouts._REGISTRY, "WebbcalTestMaskModel", None)  # restored after the test
    register_layout("WebbcalTestMaskModel", Layout("WebbcalTestMaskModel", (
        Extension("DQ", "uint32", (2,), required=True),
        Extension("DQ_DEF", columns=(("BIT", "i4"), ("VALUE", "u4"), ("NAME", "S40"), ("DESCRIPTION", "S80"))),
    )))
    dq_def = np.array([(0, 1, b"DO_NOT_USE", b"Bad pixel")],
                      dtype=[("BIT", "i4"), ("VALUE", "u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")])
    good = Product("WebbcalTestMaskModel", arrays={"DQ": np.ones((4, 4), np.uint32)}, tables={"DQ_DEF": dq_def})
    back = read_product(write_product(good, tmp_path / "mask.fits"), expect="WebbcalTestMaskModel")
    assert back.tables["DQ_DEF"]["NAME"][0] == b"DO_NOT_USE"
    bad = Product("WebbcalTestMaskModel", arrays={"DQ": np.ones((2, 4, 4), np.uint32)})
    with pytest.raises(WebbcalError, match="DQ is 3-D"):
        read_product(write_product(bad, tmp_path / "bad_mask.fits"))
    with pytest.raises(ValueError):
        register_layout("OtherName", Layout("WebbcalTestMaskModel", ()))


def test_writer_casts_to_schema_dtypes(tmp_path):
    """uint16 counts written as a RampModel become float32; uint32 DQ keeps every bit."""
    from io_builders import make_uncal

    uncal = make_uncal()
    ny, nx = uncal.arrays["SCI"].shape[-2:]
    ramp = Product("RampModel", uncal.meta, {
        "SCI": uncal.arrays["SCI"],
        "PIXELDQ": np.full((ny, nx), 2**31 + 2**30, np.int64),
        "GROUPDQ": np.zeros(uncal.arrays["SCI"].shape, np.int16),
    })
    back = read_product(write_product(ramp, tmp_path / "cast_ramp.fits"))
    assert back.arrays["SCI"].dtype.newbyteorder("=") == np.float32
    np.testing.assert_array_equal(back.arrays["SCI"], uncal.arrays["SCI"].astype(np.float32))
    assert back.arrays["PIXELDQ"].dtype == np.uint32 and back.arrays["PIXELDQ"][0, 0] == 2**31 + 2**30
    assert back.arrays["GROUPDQ"].dtype == np.uint8
    with pytest.raises(WebbcalError, match="SCI is float32, the schema needs uint32"):
        write_product(Product("SegmentationMapModel", arrays={"SCI": np.ones((3, 3), np.float32)}),
                      tmp_path / "float_segm.fits", validate=False)
