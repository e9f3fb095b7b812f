"""A failed write leaves nothing under the final name (and an old file untouched)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal.io.atomic import TEMP_PREFIX
from webbcal.io.product import read_product, write_product

from io_builders import make_rate


_REAL_WRITETO = fits.HDUList.writeto


def _fail_midway(self, fileobj, *args, **kwargs):
    """Write the primary HDU for real, then die as a full disk would."""
    _REAL_WRITETO(fits.HDUList([self[0]]), fileobj, overwrite=True)
    raise OSError(28, "No space left on device")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(fits.HDUList, "writeto", _fail_midway)
    target = tmp_path / "out_rate.fits"
    with pytest.raises(OSError, match="No space left"):
        write_product(make_rate(), target)
    assert not target.exists()
    assert not any(p.name.startswith(TEMP_PREFIX) for p in tmp_path.iterdir())


def test_failed_overwrite_keeps_previous_file(tmp_path, monkeypatch):
    target = write_product(make_rate(), tmp_path / "out_rate.fits")
    before = target.read_bytes()
    monkeypatch.setattr(fits.HDUList, "writeto", _fail_midway)
    changed = make_rate()
    changed.arrays["SCI"] = changed.arrays["SCI"] + 1
    with pytest.raises(OSError):
        write_product(changed, target)
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]


def test_overwrite_of_a_lazily_read_input(tmp_path):
    """Reading lazily from a file and writing the result onto the same name is safe."""
    target = write_product(make_rate(), tmp_path / "x_rate.fits")
    product = read_product(target)
    sci_before = np.array(product.arrays["SCI"])
    product.arrays["SCI"] = product.arrays["SCI"] * 2
    write_product(product, target)
    np.testing.assert_array_equal(read_product(target).arrays["SCI"], sci_before * 2)
