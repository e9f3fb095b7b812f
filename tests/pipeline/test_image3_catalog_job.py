"""The catalog as its own job (the workflow's rule source_catalog): run_source_catalog on
the written mosaic gives the catalog and segmentation map Image3 made inline."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from tests.pipeline.test_image3_support import aligned_outputs, image3_data  # noqa: F401
from webbcal.errors import WebbcalError
from webbcal.io.product import read_product
from webbcal.pipeline.image3 import run_source_catalog


def test_catalog_job_equals_the_inline_catalog(image3_data, aligned_outputs, tmp_path):
    cat, segm = run_source_catalog(aligned_outputs.i2d, cat_path=tmp_path / "x_cat.ecsv",
                                   segm_path=tmp_path / "x_segm.fits", refs_dir=image3_data.root / "refs")
    inline, alone = Table.read(aligned_outputs.catalog), Table.read(cat)
    assert len(alone) == len(inline) > 10
    for name in ("xcentroid", "ycentroid", "aper_total_flux", "isophotal_flux"):
        # the same numbers (the ECSV text round trip leaves ~1e-15)
        np.testing.assert_allclose(np.asarray(alone[name]), np.asarray(inline[name]), rtol=1e-12)
    np.testing.assert_array_equal(read_product(segm).arrays["SCI"], read_product(aligned_outputs.segm).arrays["SCI"])


def test_catalog_job_refuses_a_skipped_catalog_and_writes_nothing(aligned_outputs, tmp_path):
    with pytest.raises(WebbcalError, match="skipped"):
        run_source_catalog(aligned_outputs.i2d, cat_path=tmp_path / "x_cat.ecsv",
                           params={"source_catalog": {"skip": True}})
    assert not list(tmp_path.iterdir())
