"""Malformed files give a one-line WebbcalError naming the file, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal.errors import WebbcalError
from webbcal.io.product import Product, read_product, write_product

from io_builders import NINTS, NY, NX, make_cal, make_ramp, make_uncal, nircam_header


@pytest.fixture(scope="module")
def uncal_file(tmp_path_factory):
    product = make_uncal()
    product.tree = {"meta": {"note": "x" * 3000}}  # an ASDF extension spanning blocks
    return write_product(product, tmp_path_factory.mktemp("bad") / "good_uncal.fits")


def _expect_error(path, match, **kwargs):
    with pytest.raises(WebbcalError, match=match) as info:
        read_product(path, **kwargs)
    assert info.value.path == str(path)
    assert "\n" not in str(info.value)
    return info.value


def _offsets(path):
    """(header start, data start, data span) of every HDU, from astropy."""
    with fits.open(path) as hdul:
        return [(hdul.fileinfo(i)["hdrLoc"], hdul.fileinfo(i)["datLoc"], hdul.fileinfo(i)["datSpan"], hdu.name)
                for i, hdu in enumerate(hdul)]


def test_not_fits(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("this is not a FITS file\n" * 200)
    _expect_error(path, "not a FITS file")


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty.fits").write_bytes(b"")
    _expect_error(tmp_path / "empty.fits", "not a FITS file")
    _expect_error(tmp_path / "absent.fits", "no such file")
    _expect_error(tmp_path, "directory")


def test_truncated_at_several_points(uncal_file, tmp_path):
    raw = uncal_file.read_bytes()
    offsets = _offsets(uncal_file)
    names = [name for *_, name in offsets]
    assert names == ["PRIMARY", "SCI", "ZEROFRAME", "GROUP", "INT_TIMES", "ASDF"]
    sci_hdr, sci_dat, sci_span, _ = offsets[1]
    asdf_hdr, asdf_dat, asdf_span, _ = offsets[-1]
    cut_points = {
        "inside the primary header": 1000,
        "inside the SCI header": sci_hdr + 500,
        "inside the SCI data": sci_dat + sci_span // 2,
        "at the end of the SCI header": sci_dat,
        "inside the ASDF header": asdf_hdr + 100,
        "inside the ASDF data": asdf_dat + 1000,
        "one byte short": len(raw) - 1,
    }
    for where, cut in cut_points.items():
        path = tmp_path / f"cut_{cut}.fits"
        path.write_bytes(raw[:cut])
        error = _expect_error(path, "truncat|malformed|lacks|unreadable")
        assert error.path == str(path), where


def test_cut_after_primary_is_missing_sci(uncal_file, tmp_path):
    path = tmp_path / "primary_only.fits"
    sci_header_start = _offsets(uncal_file)[1][0]
    path.write_bytes(uncal_file.read_bytes()[:sci_header_start])  # a valid FITS file, just the PRIMARY
    _expect_error(path, "lacks the required SCI extension")


def test_missing_required_extension(tmp_path):
    ramp = make_ramp()
    del ramp.arrays["GROUPDQ"]
    with pytest.raises(WebbcalError, match="not written: RampModel lacks the required GROUPDQ"):
        write_product(ramp, tmp_path / "ramp.fits")
    assert not (tmp_path / "ramp.fits").exists()
    path = write_product(ramp, tmp_path / "ramp.fits", validate=False)
    _expect_error(path, "RampModel lacks the required GROUPDQ extension")


def _write_raw(path, primary_header, *hdus):
    fits.HDUList([fits.PrimaryHDU(header=primary_header), *hdus]).writeto(path)
    return path


def test_wrong_dtype_kind(tmp_path):
    header = nircam_header(DATAMODL="Level1bModel")
    sci = fits.ImageHDU(np.zeros((NINTS, 4, NY, NX), np.float32), name="SCI")
    path = _write_raw(tmp_path / "float_uncal.fits", header, sci)
    _expect_error(path, "SCI has dtype float32, SCI must be uint16")
    dq = fits.ImageHDU(np.zeros((NY, NX), np.float64), name="DQ")
    path = _write_raw(tmp_path / "float_dq.fits", nircam_header(DATAMODL="ImageModel"),
                      fits.ImageHDU(np.zeros((NY, NX), np.float32), name="SCI"), dq)
    _expect_error(path, "DQ has dtype float64")


def test_wrong_rank_and_shape(tmp_path):
    path = _write_raw(tmp_path / "cube_as_image.fits", nircam_header(DATAMODL="ImageModel"),
                      fits.ImageHDU(np.zeros((2, NY, NX), np.float32), name="SCI"))
    _expect_error(path, r"SCI is 3-D \(2, 16, 12\), SCI must be 2-D")
    path = _write_raw(tmp_path / "err_shape.fits", nircam_header(DATAMODL="ImageModel"),
                      fits.ImageHDU(np.zeros((NY, NX), np.float32), name="SCI"),
                      fits.ImageHDU(np.zeros((NY, NX + 1), np.float32), name="ERR"))
    _expect_error(path, "ERR shape .* differs from SCI shape")


def test_sci_disagrees_with_nints_ngroups(tmp_path):
    uncal = make_uncal()
    uncal.meta["NGROUPS"] = 7
    path = write_product(uncal, tmp_path / "ngroups.fits", validate=False)
    _expect_error(path, r"SCI shape \(2, 4, 16, 12\) disagrees with NGROUPS=7")
    ramp = make_ramp()
    ramp.meta["NINTS"] = 3
    path = write_product(ramp, tmp_path / "nints.fits", validate=False)
    _expect_error(path, "disagrees with NINTS=3")
    ramp.meta["INTSTART"], ramp.meta["INTEND"] = 2, 3  # a segment of 2 of 3 integrations is fine
    assert read_product(write_product(ramp, tmp_path / "segment.fits")).arrays["SCI"].shape[0] == 2


def test_pixeldq_must_match_frame(tmp_path):
    ramp = make_ramp()
    ramp.arrays["PIXELDQ"] = ramp.arrays["PIXELDQ"][:-1]
    path = write_product(ramp, tmp_path / "pdq.fits", validate=False)
    _expect_error(path, "PIXELDQ shape")


def test_model_mismatch_with_expect(tmp_path):
    path = write_product(make_cal(), tmp_path / "cal.fits")
    _expect_error(path, "is a ImageModel, expected RampModel or Level1bModel", expect=("RampModel", "Level1bModel"))
    assert read_product(path, expect="ImageModel").model == "ImageModel"


def test_malformed_header(tmp_path):
    path = write_product(Product("ImageModel", nircam_header(NINTS="two"), {"SCI": np.zeros((2, 2), np.float32)}),
                         tmp_path / "nints_text.fits", validate=False)
    _expect_error(path, "malformed header: NINTS='two' is not an integer")
    # a card with bytes that are not FITS ASCII
    raw = bytearray(write_product(make_cal(), tmp_path / "cal.fits").read_bytes())
    at = raw.index(b"DETECTOR=")
    raw[at:at + 9] = b"DE\xffEC\x00R=\x01"
    (tmp_path / "garbage_card.fits").write_bytes(bytes(raw))
    _expect_error(tmp_path / "garbage_card.fits", "malformed|truncat|not a FITS")
    # a card whose value does not parse (astropy parses lazily: it must not escape later)
    raw = bytearray((tmp_path / "cal.fits").read_bytes())
    at = raw.index(b"FILTER  =")
    raw[at:at + 80] = b"FILTER  = 'F200W".ljust(80)
    (tmp_path / "unparsable.fits").write_bytes(bytes(raw))
    _expect_error(tmp_path / "unparsable.fits", "malformed .*Unparsable card \\(FILTER\\)")


def test_table_with_wrong_columns(tmp_path):
    header = nircam_header(DATAMODL="CubeModel")
    table = fits.BinTableHDU(np.zeros(2, dtype=[("integration_number", "i4"), ("mid", "f8")]), name="INT_TIMES")
    path = _write_raw(tmp_path / "int_times.fits", header, fits.ImageHDU(np.zeros((2, 3, 3), np.float32), name="SCI"), table)
    _expect_error(path, "table INT_TIMES lacks columns int_start_MJD_UTC")


def test_corrupt_asdf_extension(uncal_file, tmp_path):
    raw = bytearray(uncal_file.read_bytes())
    asdf_dat = _offsets(uncal_file)[-1][1]
    raw[asdf_dat + 20: asdf_dat + 60] = b"\x00" * 40
    path = tmp_path / "bad_asdf.fits"
    path.write_bytes(bytes(raw))
    _expect_error(path, "ASDF extension unreadable")


def test_random_corruption_never_escapes_as_other_errors(uncal_file, tmp_path):
    """Seeded fuzzing: flipped bytes anywhere, random truncations -> a Product or WebbcalError."""
    raw = uncal_file.read_bytes()
    header_end = _offsets(uncal_file)[2][1]  # through the SCI header: where structure lives
    rng = np.random.default_rng(2024)
    outcomes = {"ok": 0, "error": 0}
    for trial in range(240):
        data = bytearray(raw)
        if trial % 4 == 0:
            data = data[: int(rng.integers(0, len(raw)))]
        elif trial % 4 == 3:  # printable garbage in the headers: parses, but to what?
            for pos in rng.integers(0, header_end, size=int(rng.integers(1, 12))):
                data[pos] = int(rng.choice(np.frombuffer(b"0123456789 =/'-.ABTEFXNS", np.uint8)))
        else:
            span = header_end if trial % 4 == 1 else len(raw)
            for pos in rng.integers(0, span, size=int(rng.integers(1, 8))):
                data[pos] = int(rng.integers(0, 256))
        path = tmp_path / f"fuzz_{trial}.fits"  # new inode: earlier memory maps stay valid
        path.write_bytes(bytes(data))
        try:
            product = read_product(path)
            for array in product.arrays.values():
                np.asarray(array[..., :1])  # touching the data must not raise either
            outcomes["ok"] += 1
        except WebbcalError as exc:
            assert exc.path == str(path) and "\n" not in str(exc)
            outcomes["error"] += 1
    assert outcomes["error"] > 40 and outcomes["ok"] > 10


def test_gzip_is_named(uncal_file, tmp_path):
    import gzip

    path = tmp_path / "jw01_uncal.fits.gz"
    path.write_bytes(gzip.compress(uncal_file.read_bytes()))
    _expect_error(path, "gzip-compressed")
