"""extract_2d for WFSS: the official boxes, every source, the selection parameters, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import QTable

from conftest import fresh_image, grism_exposure
from webbcal.errors import WebbcalError
from webbcal.spec2.catalog import read_source_catalog
from webbcal.steps.wfss import assign_wcs, extract_2d


def run_extract(scene, catalog_path=None, **params):
    image = fresh_image(scene)
    assign_wcs.apply(image, scene.refs, assign_wcs.SPEC.defaults())
    catalog = read_source_catalog(catalog_path or scene.catalog_path)
    return extract_2d.apply(image, scene.refs, extract_2d.SPEC.resolve(params), catalog)


def official_slits(wfss_obs, scene, pupil, **kwargs):
    """jwst 3.0 extract_grism_objects on the same pixels, header, references and catalog."""
    from gwcs import WCS
    from jwst.assign_wcs import nircam
    from jwst.extract_2d.grisms import extract_grism_objects
    from stdatamodels.jwst import datamodels

    from webbcal.refs import RefCache

    outdir, _ = wfss_obs
    cache = RefCache(outdir / "refs")
    header = scene.image.meta
    paths = {k: str(cache.select(k, header)) for k in ("distortion", "specwcs", "wavelengthrange")}
    paths["filteroffset"] = None
    img = scene.image
    with datamodels.open(str(outdir / "uncal" / f"{grism_exposure(wfss_obs, pupil)}_uncal.fits")) as raw:
        model = datamodels.ImageModel(data=img.data.copy(), err=img.err.copy(), dq=img.dq.copy(),
                                      var_poisson=img.var_poisson.copy(), var_rnoise=img.var_rnoise.copy(),
                                      var_flat=img.var_flat.copy())
        model.update(raw)
    model.meta.wcs = WCS(nircam.wfss(model, paths))
    model.meta.wcsinfo.dispersion_direction = 1 if pupil == "GRISMR" else 2
    model.meta.source_catalog = str(scene.catalog_path)
    # compute_wavelength=False: jwst 3.0 cannot evaluate its own field-dependent grism model
    # on a whole slit grid (broadcast error in invdisp_interp); wavelengths are compared per pixel
    return extract_grism_objects(model, reference_files={"wavelengthrange": paths["wavelengthrange"]},
                                 compute_wavelength=False, **kwargs)


@pytest.mark.parametrize("pupil", ["GRISMR", "GRISMC"])
def test_same_slits_as_the_official_extract_2d(wfss_obs, scenes, pupil):
    """Same sources, order, corners and sizes (0 px difference measured), same cut-out
    pixels, same RA/Dec and wavelength from the slit WCS (within 2e-6 micron = 0.002 px)."""
    scene = scenes[pupil]
    ours = run_extract(scene)
    theirs = official_slits(wfss_obs, scene, pupil, wfss_extract_half_height=5, nbright=1000)
    assert len(ours.slits) == len(theirs.slits) == len(scene.truth)
    for a, b in zip(ours.slits, theirs.slits):
        assert (a.source_id, a.order) == (b.source_id, b.meta.wcsinfo.spectral_order)
        assert (a.xstart + 1, a.ystart + 1, a.shape) == (b.xstart, b.ystart, b.data.shape)
        np.testing.assert_array_equal(a.data, b.data)
        assert a.source_xpos == pytest.approx(b.source_xpos, abs=1e-6)
        assert a.source_ypos == pytest.approx(b.source_ypos, abs=1e-6)
        ny, nx = a.shape
        for x in np.round(np.linspace(0, nx - 1, 4)):
            for y in (0.0, ny - 1.0):
                ra, dec, lam, order = b.meta.wcs(x, y)
                mine = a.wcs(x, y)
                assert mine[0] == pytest.approx(ra, abs=1e-9) and mine[1] == pytest.approx(dec, abs=1e-9)
                assert mine[2] == pytest.approx(lam, abs=2e-6) and mine[3] == order
                assert a.wavelength[int(y), int(x)] == pytest.approx(lam, abs=2e-6)


def test_every_catalog_source_is_extracted_in_brightness_order(scenes):
    slits = run_extract(scenes["GRISMR"])
    ids = [s.source_id for s in slits.slits]
    assert sorted(ids) == sorted(scenes["GRISMR"].truth["id"])  # 9 sources, not 3
    magnitudes = dict(zip(*_catalog_mags(scenes["GRISMR"])))
    assert [magnitudes[i] for i in ids] == sorted(magnitudes[i] for i in ids)
    assert slits.meta["S_EXTR2D"] == "COMPLETE"
    # catalog sky position → the exposure's imaging WCS → the true direct-image position
    truth = scenes["GRISMR"].truth
    for s in slits.slits:
        row = truth[truth["id"] == s.source_id][0]
        assert np.hypot(s.source_xpos - row["x0"], s.source_ypos - row["y0"]) < 0.01
    # the WAVELENGTH rises along the dispersion (flat beyond the trace ends, where t is
    # clamped to [0, 1] as officially) and is constant across it
    s = slits.slits[0]
    step = np.diff(s.wavelength[0])
    assert np.all(step >= 0) and np.mean(step > 0) > 0.97
    assert np.all(s.wavelength == s.wavelength[:1])


def _catalog_mags(scene):
    table = QTable.read(scene.catalog_path, format="ascii.ecsv")
    return np.asarray(table["label"]), np.asarray(table["isophotal_abmag"])


def test_half_height_applies_to_point_sources_only(scenes):
    slits = run_extract(scenes["GRISMR"], wfss_extract_half_height=7)
    for s in slits.slits:
        if not s.is_extended:
            assert s.shape[0] == 15
        else:
            assert s.shape[0] == 2 * 9 + 1 + 2  # segment box ±9 px plus the trace's tilt


def test_selection_parameters(scenes):
    scene = scenes["GRISMR"]
    labels, mags = _catalog_mags(scene)
    assert {s.source_id for s in run_extract(scene, source_ids="103, 107").slits} == {103, 107}
    assert len({s.source_id for s in run_extract(scene, wfss_nbright=4).slits}) == 4
    limit = float(np.sort(mags)[2]) + 1e-6
    assert {s.source_id for s in run_extract(scene, wfss_mmag_extract=limit).slits} == set(labels[mags < limit])
    table = QTable.read(scene.catalog_path, format="ascii.ecsv")
    target = table[table["label"] == 105][0]["sky_centroid"]
    near = run_extract(scene, source_ra=f"{target.ra.deg + 0.2 / 3600}", source_dec=f"{target.dec.deg}",
                       source_ids="101")
    assert {s.source_id for s in near.slits} == {101, 105}
    with pytest.raises(WebbcalError, match="no catalog source matches"):
        run_extract(scene, source_ra=f"{target.ra.deg + 0.1}", source_dec=f"{target.dec.deg}")
    both = run_extract(scene, extract_orders="1,2", source_ids="101")
    assert [s.order for s in both.slits] == [1]  # order 2 of this source falls off the detector


def test_catalog_missing_columns_is_one_clear_error(scenes, tmp_path):
    table = QTable.read(scenes["GRISMR"].catalog_path, format="ascii.ecsv")
    del table["sky_bbox_ur"], table["is_extended"]
    path = tmp_path / "bad_cat.ecsv"
    table.write(path, format="ascii.ecsv")
    with pytest.raises(WebbcalError, match=r"bad_cat.ecsv: source catalog lacks column\(s\) sky_bbox_ur, is_extended"):
        read_source_catalog(path)


def test_no_source_on_the_detector_is_one_clear_error(scenes, tmp_path):
    """A catalog whose sources are all far off this exposure: a WebbcalError, no slits."""
    from astropy.coordinates import SkyCoord

    table = QTable.read(scenes["GRISMR"].catalog_path, format="ascii.ecsv")
    for name in ("sky_centroid", "sky_bbox_ll", "sky_bbox_lr", "sky_bbox_ul", "sky_bbox_ur"):
        col = table[name]
        table[name] = SkyCoord(col.ra.deg + 1.0, col.dec.deg, unit="deg")
    path = tmp_path / "far_cat.ecsv"
    table.write(path, format="ascii.ecsv")
    with pytest.raises(WebbcalError, match="no catalog source has a spectrum on this exposure"):
        run_extract(scenes["GRISMR"], catalog_path=path)


def test_cal_product_opens_as_official_multislit(scenes, tmp_path):
    from stdatamodels.jwst import datamodels

    from webbcal.io import read_product, write_product

    slits = run_extract(scenes["GRISMC"])
    path = write_product(slits.to_product(), tmp_path / "wfss_cal.fits")
    with datamodels.open(str(path)) as model:
        assert type(model).__name__ == "MultiSlitModel" and len(model.slits) == len(slits.slits)
        for ours, theirs in zip(slits.slits, model.slits):
            assert theirs.source_id == ours.source_id and theirs.name == str(ours.source_id)
            assert (theirs.xstart, theirs.ystart) == (ours.xstart + 1, ours.ystart + 1)
            assert theirs.meta.wcsinfo.spectral_order == 1 and theirs.meta.wcsinfo.dispersion_direction == 2
            assert theirs.is_extended == ours.is_extended
            np.testing.assert_array_equal(theirs.wavelength, ours.wavelength)
            ny, nx = ours.shape
            assert theirs.meta.wcs(nx // 2, ny // 3)[2] == pytest.approx(ours.wavelength[ny // 3, nx // 2], abs=1e-6)
    back = read_product(path, expect="MultiSlitModel")
    assert back.slit_numbers() == list(range(1, len(slits.slits) + 1))
