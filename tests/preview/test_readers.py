"""What a preview reads from a file, tested without drawing."""

import numpy as np
import pytest
from astropy.table import Table

from tests.preview.conftest import SLITS
from webbcal.errors import WebbcalError
from webbcal.preview.catalog import catalog_positions
from webbcal.preview.reading import read_for_preview
from webbcal.preview.slits import frame_shape, paste_slits, slit_boxes
from webbcal.preview.spectra import best_spectra, column_unit, read_spectra


def test_slit_boxes_come_from_the_slit_headers(wfss_cal_file):
    product = read_for_preview(wfss_cal_file)
    boxes = slit_boxes(product)
    assert [(b.x0, b.y0, b.width, b.height, b.order, b.source_id) for b in boxes] == SLITS
    assert frame_shape(product, boxes) == (100, 120)


def test_pasted_grism_image_puts_each_cutout_at_its_box(wfss_cal_file):
    product = read_for_preview(wfss_cal_file)
    boxes = slit_boxes(product)
    frame = paste_slits(product, boxes, (100, 120))
    assert frame[20, 10] == 1 and frame[27, 69] == 1 and np.isnan(frame[28, 10])
    assert frame[50, 30] == 2 and frame[74, 44] == 3
    assert np.count_nonzero(np.isfinite(frame)) == sum(w * h for _, _, w, h, _, _ in SLITS)


def test_a_slit_without_its_place_is_an_error_naming_it(wfss_cal_file):
    product = read_for_preview(wfss_cal_file)
    del product.ext_meta["SCI,2"]["SLTSTRT2"]
    with pytest.raises(WebbcalError, match="slit 2 has no SLTSTRT2"):
        slit_boxes(product)


def test_spectra_are_trimmed_to_their_valid_length_and_ranked_by_snr(x1d_file):
    product = read_for_preview(x1d_file)
    spectra = read_spectra(product)
    assert [(s.source_id, s.order, s.wavelength.size) for s in spectra] == [(7, 1, 50), (8, 1, 50), (7, 2, 30)]
    assert spectra[0].median_snr == pytest.approx(20.0)
    assert spectra[1].median_snr == pytest.approx(2.0)
    assert [(s.source_id, s.order) for s in best_spectra(spectra, 2)] == [(7, 1), (7, 2)]
    assert column_unit(product, "EXTRACT1D,1", "FLUX") == "Jy"
    assert column_unit(product, "EXTRACT1D,1", "WAVELENGTH") == "um"


def test_catalog_positions_skip_sources_without_a_centroid(tmp_path):
    path = tmp_path / "m_cat.ecsv"
    Table({"label": [1, 2, 3], "xcentroid": [10.5, np.nan, 3.0], "ycentroid": [4.0, 1.0, 7.25]}).write(path)
    x, y = catalog_positions(path)
    assert x.tolist() == [10.5, 3.0] and y.tolist() == [4.0, 7.25]


def test_a_catalog_without_centroids_is_an_error(tmp_path):
    path = tmp_path / "m_cat.ecsv"
    Table({"label": [1]}).write(path)
    with pytest.raises(WebbcalError, match="m_cat.ecsv: catalog has no column xcentroid, ycentroid"):
        catalog_positions(path)


def test_not_a_fits_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "x_rate.fits"
    path.write_text("hello")
    with pytest.raises(WebbcalError, match="x_rate.fits: not a FITS file"):
        read_for_preview(path)
