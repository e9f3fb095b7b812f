"""Every product type round-trips between webbcal and the official stdatamodels reader/writer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from webbcal.io.product import read_product, write_product

from io_builders import PRODUCT_FACTORIES, datamodels, imaging_wcs, nircam_header  # noqa: F401 (fixture)

# EXTNAME -> stdatamodels attribute
ATTRIBUTE = {
    "SCI": "data", "ERR": "err", "DQ": "dq", "PIXELDQ": "pixeldq", "GROUPDQ": "groupdq",
    "ZEROFRAME": "zeroframe", "AVDRKCUR": "average_dark_current", "AREA": "area",
    "VAR_POISSON": "var_poisson", "VAR_RNOISE": "var_rnoise", "VAR_FLAT": "var_flat",
    "CON": "con", "WHT": "wht", "WAVELENGTH": "wavelength", "GROUP": "group", "INT_TIMES": "int_times",
}


def open_strict(datamodels, path):
    """Open with the official reader; any validation warning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        model = datamodels.open(path, strict_validation=True)
        model.validate()
    return model


def same_dtype(a: np.dtype, b: np.dtype) -> bool:
    """Equal up to byte order (FITS is big-endian, memory is native)."""
    return a.newbyteorder("=") == b.newbyteorder("=")


def assert_tables_equal(ours: np.ndarray, theirs) -> None:
    theirs = np.asarray(theirs)
    assert list(ours.dtype.names) == list(theirs.dtype.names)
    for name in ours.dtype.names:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


@pytest.mark.parametrize("kind", sorted(PRODUCT_FACTORIES))
def test_webbcal_file_opens_as_official_class(kind, tmp_path, datamodels):
    factory, model_class = PRODUCT_FACTORIES[kind]
    product = factory()
    path = write_product(product, tmp_path / f"jw01_{kind}.fits")
    with open_strict(datamodels, path) as model:
        assert type(model).__name__ == model_class
        if model_class == "MultiSlitModel":
            assert len(model.slits) == 2
            for i, slit in enumerate(model.slits, start=1):
                np.testing.assert_array_equal(slit.data, product.arrays[f"SCI,{i}"])
                np.testing.assert_array_equal(slit.wavelength, product.arrays[f"WAVELENGTH,{i}"])
                assert slit.source_id == 100 + i and slit.name == str(100 + i)
                assert slit.meta.bunit_data == "MJy/sr"
        elif model_class == "WFSSMultiSpecModel":
            assert [spec.group_id for spec in model.spec] == ["jw01_1_1", "jw01_2_1"]
            for i, spec in enumerate(model.spec, start=1):
                assert_tables_equal(product.tables[f"EXTRACT1D,{i}"], spec.spec_table)
            assert model.spec[0].spec_table.columns["FLUX"].unit == "Jy"
        else:
            for name, array in product.arrays.items():
                theirs = getattr(model, ATTRIBUTE[name])
                np.testing.assert_array_equal(theirs, array, err_msg=name)
                assert same_dtype(theirs.dtype, array.dtype), name
            for name, table in product.tables.items():
                assert_tables_equal(table, getattr(model, ATTRIBUTE[name]))
        assert model.meta.instrument.detector == product.meta["DETECTOR"]
        assert model.meta.exposure.type == product.meta["EXP_TYPE"]
        if "wcs" in product.tree.get("meta", {}):
            x, y = np.meshgrid(np.arange(0, 12, 3.5), np.arange(0, 16, 2.5))
            ra, dec = model.meta.wcs(x, y)
            ra0, dec0 = product.tree["meta"]["wcs"](x, y)
            assert np.max(np.abs(ra - ra0)) < 1e-9 and np.max(np.abs(dec - dec0)) < 1e-9


@pytest.mark.parametrize("kind", sorted(PRODUCT_FACTORIES))
def test_official_file_reads_identically(kind, tmp_path, datamodels):
    """A file saved by stdatamodels (built from the same content) reads back exactly."""
    factory, model_class = PRODUCT_FACTORIES[kind]
    ours = factory()
    staged = write_product(ours, tmp_path / "staged.fits")
    with datamodels.open(staged) as model:
        official_path = tmp_path / f"official_{kind}.fits"
        model.save(official_path)  # written entirely by stdatamodels (its own ASDF, _fits_hash)
    back = read_product(official_path)
    assert back.model == model_class
    assert set(back.arrays) == set(ours.arrays)
    for key, array in ours.arrays.items():
        got = np.asarray(back.arrays[key])
        np.testing.assert_array_equal(got, array, err_msg=key)
        assert same_dtype(got.dtype, array.dtype), key
    assert set(back.tables) == set(ours.tables)
    for key, table in ours.tables.items():
        assert_tables_equal(table, back.tables[key])
    for key in ("DETECTOR", "FILTER", "PUPIL", "EXP_TYPE", "READPATT", "NINTS", "NGROUPS", "SUBARRAY"):
        assert back.meta[key] == ours.meta[key], key
    for key, cards in ours.ext_meta.items():
        for card, value in cards.items():
            # schema SCI-header keywords (WCS info, photometry) are lifted into meta on read
            got = back.ext_meta[key].get(card, back.meta.get(card) if key == "SCI" else None)
            assert got == value, (key, card)
    if "wcs" in ours.tree.get("meta", {}):
        wcs = back.tree["meta"]["wcs"]
        np.testing.assert_allclose(wcs(3.0, 7.0), ours.tree["meta"]["wcs"](3.0, 7.0), rtol=0, atol=1e-12)


def test_model_built_by_stdatamodels_with_gwcs_opens_in_webbcal(tmp_path, datamodels):
    """Built from scratch with stdatamodels (no webbcal involvement), gwcs attached."""
    wcs = imaging_wcs(crval=(150.1, 2.2))
    model = datamodels.ImageModel((16, 12))
    model.data[...] = np.arange(16 * 12, dtype=np.float32).reshape(16, 12)
    model.dq = np.zeros((16, 12), np.uint32)
    model.dq[3, 4] = 2**31 + 1
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.detector = "NRCB2"
    model.meta.exposure.type = "NRC_IMAGE"
    model.meta.bunit_data = "MJy/sr"
    model.meta.wcs = wcs
    path = tmp_path / "sdm_cal.fits"
    model.save(path)
    product = read_product(path, expect="ImageModel")
    np.testing.assert_array_equal(product.arrays["SCI"], model.data)
    assert product.arrays["DQ"][3, 4] == 2**31 + 1
    assert product.meta["DETECTOR"] == "NRCB2"
    assert product.ext_meta["SCI"]["BUNIT"] == "MJy/sr"
    x, y = np.meshgrid(np.arange(12.0), np.arange(16.0))
    ra, dec = product.tree["meta"]["wcs"](x, y)
    ra0, dec0 = wcs(x, y)
    assert np.max(np.abs(ra - ra0)) < 1e-9 and np.max(np.abs(dec - dec0)) < 1e-9
    # and the inverse transform survived too
    xb, yb = product.tree["meta"]["wcs"].invert(ra0[5, 5], dec0[5, 5])
    assert abs(xb - 5) < 1e-6 and abs(yb - 5) < 1e-6


def test_reading_official_tree_drops_fits_array_references(tmp_path, datamodels):
    model = datamodels.ImageModel(np.ones((4, 5), np.float32))
    model.meta.instrument.name = "NIRCAM"
    path = tmp_path / "plain.fits"
    model.save(path)
    product = read_product(path)
    assert "data" not in product.tree and "_fits_hash" not in product.tree
    assert product.tree["meta"]["instrument"]["name"] == "NIRCAM"


def test_rewritten_official_file_keeps_header_authority(tmp_path, datamodels):
    """webbcal omits _fits_hash, so a header edit wins over the stale copy in the tree."""
    model = datamodels.ImageModel(np.ones((4, 5), np.float32))
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.filter = "F200W"
    model.save(tmp_path / "a.fits")
    product = read_product(tmp_path / "a.fits")
    product.meta["FILTER"] = "F150W"
    write_product(product, tmp_path / "b.fits")
    with datamodels.open(tmp_path / "b.fits") as reopened:
        assert reopened.meta.instrument.filter == "F150W"


def test_header_helper_is_schema_valid(tmp_path, datamodels):
    """Guard for the test fixtures themselves: a bad enum would make the tests above vacuous."""
    header = nircam_header(READPATT="NOT_A_PATTERN")
    from webbcal.io.product import Product

    write_product(Product("ImageModel", header, {"SCI": np.zeros((2, 2), np.float32)}), tmp_path / "bad.fits")
    with pytest.raises(Exception, match="READPATT|readpatt|NOT_A_PATTERN"):
        open_strict(datamodels, tmp_path / "bad.fits")


def test_x1d_built_like_jwst_extract_1d_reads_with_schema_layout(tmp_path, datamodels):
    """jwst 3.0 builds x1d as WFSSMultiSpecModel of WFSSSpecModel(spec_table) with schema units."""
    from webbcal.io.layouts import WFSS_SPECTABLE_UNITS, wfss_spectable_dtype

    schema_columns = datamodels.WFSSSpecModel().schema["properties"]["spec_table"]["datatype"]
    table = np.zeros(2, dtype=wfss_spectable_dtype(9))
    assert list(table.dtype.names) == [col["name"] for col in schema_columns]
    table["SOURCE_ID"] = [7, 9]
    table["FLUX"] = np.arange(18.0).reshape(2, 9)
    table["SOURCE_TYPE"] = b"EXTENDED"
    model = datamodels.WFSSMultiSpecModel()
    spec = datamodels.WFSSSpecModel(table)
    for col in schema_columns:
        if "unit" in col:
            spec.spec_table.columns[col["name"]].unit = col["unit"]
    spec.spec_table.columns["FLUX"].unit = "Jy"
    spec.group_id = "jw01_2_1"
    spec.spectral_order = 1
    model.spec.append(spec)
    model.save(tmp_path / "sdm_x1d.fits")
    product = read_product(tmp_path / "sdm_x1d.fits", expect="WFSSMultiSpecModel")
    got = product.tables["EXTRACT1D,1"]
    assert got.dtype == wfss_spectable_dtype(9)
    np.testing.assert_array_equal(got["FLUX"], table["FLUX"])
    assert list(got["SOURCE_TYPE"]) == [b"EXTENDED", b"EXTENDED"]
    cards = product.ext_meta["EXTRACT1D,1"]
    assert cards["EXPGRPID"] == "jw01_2_1" and cards["SPORDER"] == 1
    units = dict(WFSS_SPECTABLE_UNITS)
    names = list(got.dtype.names)
    assert cards[f"TUNIT{names.index('FLUX') + 1}"] == units["FLUX"]
    assert cards[f"TUNIT{names.index('SOURCE_RA') + 1}"] == units["SOURCE_RA"]


def test_per_slit_gwcs_round_trips(tmp_path, datamodels):
    """MultiSlitModel: each slit's gwcs lives in tree["slits"][i]["meta"]["wcs"]."""
    from io_builders import make_wfss_cal

    product = make_wfss_cal()
    wcs_by_slit = [imaging_wcs(crval=(10.0 * i, 5.0)) for i in (1, 2)]
    product.tree = {"slits": [{"meta": {"wcs": w}} for w in wcs_by_slit]}
    path = write_product(product, tmp_path / "wfss_cal.fits")
    with open_strict(datamodels, path) as model:
        for slit, wcs in zip(model.slits, wcs_by_slit):
            np.testing.assert_allclose(slit.meta.wcs(4.0, 2.0), wcs(4.0, 2.0), rtol=0, atol=1e-12)
        model.save(tmp_path / "resaved.fits")
    back = read_product(tmp_path / "resaved.fits")
    for slit_tree, wcs in zip(back.tree["slits"], wcs_by_slit):
        np.testing.assert_allclose(slit_tree["meta"]["wcs"](4.0, 2.0), wcs(4.0, 2.0), rtol=0, atol=1e-12)


def test_webbcal_asdf_extension_has_no_fits_hash(tmp_path):
    """The ASDF HDU is one row of raw bytes in column ASDF_METADATA, and carries no _fits_hash."""
    import io

    import asdf
    from astropy.io import fits

    from io_builders import make_cal

    path = write_product(make_cal(), tmp_path / "c_cal.fits")
    with fits.open(path) as hdul:
        hdu = hdul["ASDF"]
        assert hdul.index_of("ASDF") == len(hdul) - 1
        assert hdu.columns.names == ["ASDF_METADATA"] and hdu.columns[0].format.endswith("B")
        raw = hdu.data["ASDF_METADATA"][0].tobytes()
    with asdf.open(io.BytesIO(raw)) as af:
        assert "_fits_hash" not in af.tree
        assert set(af.tree["meta"]) == {"wcs"}


def test_sci_header_keywords_go_where_the_schema_reads_them(tmp_path, datamodels):
    """PHOTMJSR, PIXAR_SR, RA_REF, XPOSURE, S_REGION live in SCI per the schemas; meta holds them."""
    from io_builders import make_cal

    product = make_cal()
    product.meta["XPOSURE"] = 1245.5
    product.meta["S_REGION"] = "POLYGON ICRS  53.1 -27.8 53.2 -27.8 53.2 -27.7 53.1 -27.7"
    product.meta["V3I_YANG"] = -0.56
    path = write_product(product, tmp_path / "kw_cal.fits")
    from astropy.io import fits

    with fits.open(path) as hdul:
        assert "PIXAR_SR" in hdul["SCI"].header and "PIXAR_SR" not in hdul[0].header
        assert hdul["SCI"].header["XPOSURE"] == 1245.5 and "DETECTOR" not in hdul["SCI"].header
    with open_strict(datamodels, path) as model:
        assert model.meta.photometry.pixelarea_steradians == 9.3e-14
        assert model.meta.photometry.conversion_megajanskys == 0.21
        assert model.meta.wcsinfo.ra_ref == 53.16 and model.meta.wcsinfo.v3yangle == -0.56
        assert model.meta.exposure.effective_exposure_time == 1245.5
        assert model.meta.wcsinfo.s_region.startswith("POLYGON")
    back = read_product(path)
    for key in ("PIXAR_SR", "PHOTMJSR", "XPOSURE", "RA_REF", "S_REGION", "V3I_YANG"):
        assert key in back.meta and key not in back.ext_meta["SCI"], key
    assert back.ext_meta["SCI"]["BUNIT"] == "MJy/sr"


def test_uncal_opens_as_ramp_like_detector1_steps(tmp_path, datamodels):
    """Every official Detector1 step opens its uncal input as a RampModel (open_as_ramp)."""
    from io_builders import make_uncal

    uncal = make_uncal()
    path = write_product(uncal, tmp_path / "jw01_uncal.fits")
    with datamodels.RampModel(path) as ramp:
        assert ramp.data.dtype == np.float32 and ramp.groupdq.shape == ramp.data.shape
        np.testing.assert_array_equal(ramp.data, uncal.arrays["SCI"].astype(np.float32))
        np.testing.assert_array_equal(ramp.zeroframe, uncal.arrays["ZEROFRAME"].astype(np.float32))
        assert ramp.meta.exposure.ngroups == 4 and ramp.meta.exposure.zero_frame is True
