"""Pictures of hand-built products: the right things are drawn, quickly."""

import time

import numpy as np
import pytest
from astropy.table import Table

from tests.preview.conftest import image_product
from webbcal.errors import WebbcalError
from webbcal.io.product import write_product
from webbcal.preview import render_preview
from webbcal.preview.render import DPI, IMAGE_SIZE, NAN_COLOUR, ORDER_COLOURS

pytest.importorskip("matplotlib")


def pixels(png) -> np.ndarray:
    from matplotlib.image import imread

    return (imread(png)[..., :3] * 255).round().astype(int)


def count_colour(image: np.ndarray, colour: str, tolerance: int = 12) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int(np.count_nonzero(np.abs(image - rgb).max(axis=-1) <= tolerance))


def count_reddish(image: np.ndarray) -> int:
    """Pixels clearly red on a grey image (antialiased circle edges included)."""
    return int(np.count_nonzero(image[..., 0] - image[..., 1:].max(axis=-1) > 60))


def test_rate_preview_is_a_picture_of_the_expected_size_with_its_nans_shown(rate_file, tmp_path):
    png = render_preview(rate_file, tmp_path / "rate.png")
    image = pixels(png)
    assert image.shape[:2] == (round(IMAGE_SIZE[1] * DPI), round(IMAGE_SIZE[0] * DPI))
    assert image.std() > 20  # not blank
    nan_area = count_colour(image, NAN_COLOUR)
    assert 500 < nan_area < 5000  # the 10 x 10 NaN block, ~ (10 * 4.4 px)^2 on screen


def test_mosaic_preview_circles_each_catalog_source(rate_file, tmp_path):
    catalog = tmp_path / "m_cat.ecsv"
    Table({"xcentroid": [80.0], "ycentroid": [30.0]}).write(catalog)
    without = count_reddish(pixels(render_preview(rate_file, tmp_path / "a.png")))
    one = count_reddish(pixels(render_preview(rate_file, tmp_path / "b.png", catalog=catalog)))
    Table({"xcentroid": [80.0, 30.0, 100.0], "ycentroid": [30.0, 80.0, 80.0]}).write(catalog, overwrite=True)
    three = count_reddish(pixels(render_preview(rate_file, tmp_path / "c.png", catalog=catalog)))
    assert without == 0
    assert one > 30
    assert three == pytest.approx(3 * one, rel=0.25)


def test_grism_preview_draws_a_box_per_slit_in_its_order_colour(wfss_cal_file, rate_file, tmp_path):
    on_rate = pixels(render_preview(wfss_cal_file, tmp_path / "g.png", background=rate_file))
    alone = pixels(render_preview(wfss_cal_file, tmp_path / "h.png"))
    for image in (on_rate, alone):
        order1, order2 = count_colour(image, ORDER_COLOURS[0]), count_colour(image, ORDER_COLOURS[1])
        # order 1: boxes of 60 x 8 and 50 x 6 pixels; order 2: 40 x 5 (perimeters 136 + 112 vs 90)
        assert order1 > 0 and order2 > 0
        assert order1 / order2 == pytest.approx((136 + 112) / 90, rel=0.35)
    assert count_colour(alone, NAN_COLOUR) > count_colour(on_rate, NAN_COLOUR)  # no slit: no data


def test_spectra_preview_has_a_panel_per_spectrum(x1d_file, tmp_path):
    image = pixels(render_preview(x1d_file, tmp_path / "s.png"))
    assert image.shape[1] == round(3.2 * 3 * DPI)  # three spectra: one row of three panels
    assert image.shape[0] == round((2.2 + 0.6) * DPI)


def test_preview_of_an_unsupported_model_is_a_one_line_error(tmp_path):
    from webbcal.io.product import Product

    segm = write_product(Product("SegmentationMapModel", arrays={"SCI": np.ones((4, 4), np.uint32)}),
                         tmp_path / "m_segm.fits")
    with pytest.raises(WebbcalError, match="m_segm.fits: no preview for a SegmentationMapModel"):
        render_preview(segm, tmp_path / "x.png")


def test_a_full_frame_preview_takes_under_a_second(tmp_path):
    rng = np.random.default_rng(0)
    path = write_product(image_product(rng.normal(0, 1, (2048, 2048))), tmp_path / "big_cal.fits")
    render_preview(path, tmp_path / "warm.png")  # imports
    start = time.perf_counter()
    render_preview(path, tmp_path / "big.png")
    assert time.perf_counter() - start < 1.0


def test_the_command_writes_the_png_and_reports_bad_input_in_one_line(rate_file, tmp_path):
    from click.testing import CliRunner

    from webbcal.commands.preview import preview

    result = CliRunner().invoke(preview, [str(rate_file), "-o", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
