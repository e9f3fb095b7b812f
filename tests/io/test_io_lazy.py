"""Memory-mapped reading: flight-like uint16 uncal, sections, and a bounded memory footprint."""

from __future__ import annotations

import tracemalloc

import numpy as np
from astropy.io import fits

from webbcal.io.lazy import ScaledMemmap, read_section
from webbcal.io.product import read_product

from io_builders import NGROUPS, NINTS, NX, NY, datamodels, group_table, int_times_table, nircam_header  # noqa: F401


def write_flight_uncal(path, shape=(NINTS, NGROUPS, NY, NX), seed=0):
    """As the DMS delivers it: plain astropy, uint16 via BZERO=32768, no ZEROFRAME, no ASDF."""
    sci = np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)
    sci.flat[:4] = [0, 1, 32767, 65535]
    header = nircam_header(DATAMODL="Level1bModel", NINTS=shape[0], NGROUPS=shape[1])
    sci_hdu = fits.ImageHDU(sci, name="SCI")
    sci_hdu.header["BUNIT"] = "DN"
    hdus = [fits.PrimaryHDU(header=header), sci_hdu,
            fits.BinTableHDU(group_table(shape[0], shape[1]), name="GROUP"),
            fits.BinTableHDU(int_times_table(shape[0]), name="INT_TIMES")]
    fits.HDUList(hdus).writeto(path)
    return sci


def test_flight_uncal_reads_right(tmp_path, datamodels):
    path = tmp_path / "jw01_uncal.fits"
    sci = write_flight_uncal(path)
    with fits.open(path) as hdul:
        assert hdul["SCI"].header["BZERO"] == 32768 and hdul["SCI"].header["BITPIX"] == 16
        assert "ASDF" not in hdul and "ZEROFRAME" not in hdul
    product = read_product(path, expect="Level1bModel")
    data = product.arrays["SCI"]
    assert isinstance(data, ScaledMemmap) and data.dtype == np.uint16 and data.shape == sci.shape
    np.testing.assert_array_equal(np.asarray(data), sci)
    np.testing.assert_array_equal(data[1, 2, 3:9], sci[1, 2, 3:9])
    np.testing.assert_array_equal(data.astype(np.float32), sci.astype(np.float32))
    assert float((data + 0.0).max()) == 65535.0 and int(np.min(data)) == 0
    eager = read_product(path, lazy=False).arrays["SCI"]
    assert type(eager) is np.ndarray and eager.dtype == np.dtype("uint16")
    np.testing.assert_array_equal(eager, sci)
    assert "ZEROFRAME" not in product.arrays and product.tree == {}
    with datamodels.open(path) as official:  # same values through the official reader
        np.testing.assert_array_equal(official.data, np.asarray(data))
    assert product.tables["GROUP"]["group_end_time"][0] == b"2024-01-02T03:04:05.000"


def test_unscaled_arrays_are_memory_maps(tmp_path):
    from io_builders import make_ramp
    from webbcal.io.product import write_product

    path = write_product(make_ramp(), tmp_path / "r_ramp.fits")
    product = read_product(path)
    assert isinstance(product.arrays["SCI"], np.memmap)
    assert isinstance(product.arrays["GROUPDQ"], np.memmap)
    assert isinstance(product.arrays["PIXELDQ"], ScaledMemmap)  # uint32 via BZERO
    before = path.read_bytes()
    product.arrays["SCI"][0, 0, 0, 0] = -1.0  # copy-on-write: the step sees it, the file does not
    product.arrays["PIXELDQ"][0, :3] = [2**32 - 1, 0, 5]
    assert product.arrays["SCI"][0, 0, 0, 0] == -1.0
    np.testing.assert_array_equal(product.arrays["PIXELDQ"][0, :3], [2**32 - 1, 0, 5])
    assert path.read_bytes() == before


def test_read_section_matches_full_read(tmp_path):
    path = tmp_path / "jw02_uncal.fits"
    sci = write_flight_uncal(path, seed=3)
    block = read_section(path, "SCI", np.s_[:, :, 5:9, :])
    assert block.dtype == np.uint16 and block.flags.c_contiguous
    np.testing.assert_array_equal(block, sci[:, :, 5:9, :])
    np.testing.assert_array_equal(read_section(path, "SCI", np.s_[1, 3]), sci[1, 3])


def test_touching_one_section_does_not_load_everything(tmp_path):
    """A 2 x 10 x 1024 x 1024 uncal is 40 MB on disk; one group row block must cost ~100 kB."""
    path = tmp_path / "big_uncal.fits"
    shape = (2, 10, 1024, 1024)
    sci = np.full(shape, 1000, dtype=np.uint16)
    sci[1, 7, 200:210] = 4242
    header = nircam_header(DATAMODL="Level1bModel", NINTS=2, NGROUPS=10)
    fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(sci, name="SCI")]).writeto(path)
    del sci
    tracemalloc.start()
    try:
        product = read_product(path)
        rows = product.arrays["SCI"][1, 7, 195:215]
        section = read_section(path, "SCI", np.s_[1, 7, 200:205])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows[5:15].min() == 4242 and rows[:5].max() == 1000
    assert (section == 4242).all()
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MB for a 40 MB file"


def test_scaled_memmap_conversions_are_exact(tmp_path):
    """uint16 and uint32 edges survive every path (index, asarray, float astype, arithmetic)."""
    from io_builders import make_rate
    from webbcal.io.product import write_product

    rate = make_rate()
    rate.arrays["DQ"] = np.array([[0, 1, 2**31 - 1, 2**31, 2**32 - 1, 123456789]] * 3, dtype=np.uint32)
    for key in ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE"):
        rate.arrays[key] = rate.arrays[key][:3, :6]
    dq = read_product(write_product(rate, tmp_path / "dq_rate.fits")).arrays["DQ"]
    truth = rate.arrays["DQ"]
    assert isinstance(dq, ScaledMemmap) and dq.dtype == np.uint32
    np.testing.assert_array_equal(np.asarray(dq), truth)
    np.testing.assert_array_equal(dq.astype(np.float64), truth.astype(np.float64))
    np.testing.assert_array_equal(dq.astype(np.float32), truth.astype(np.float32))
    np.testing.assert_array_equal(dq.astype(np.int64), truth.astype(np.int64))
    np.testing.assert_array_equal(dq & 2**31, truth & 2**31)
    np.testing.assert_array_equal(np.bitwise_and(dq, 1), truth & 1)
    assert [row.tolist() for row in dq] == truth.tolist()
    assert dq.max() == 2**32 - 1 and dq.T.shape == (6, 3) and dq.sum() == truth.sum()


def test_many_slits_share_one_file_descriptor(tmp_path):
    """Each mmap holds a descriptor: 160 slits x 7 planes must not need 1120 of them (> a 1024 limit)."""
    import os

    from io_builders import make_wfss_cal
    from webbcal.io.product import write_product

    path = write_product(make_wfss_cal(nslits=160), tmp_path / "many_cal.fits")
    before = len(os.listdir("/proc/self/fd"))
    product = read_product(path)
    opened = len(os.listdir("/proc/self/fd")) - before
    assert len(product.arrays) == 1120 and opened <= 2
    np.testing.assert_array_equal(np.asarray(product.arrays["SCI,160"]).shape, (6, 180))
