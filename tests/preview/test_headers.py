import pytest
from astropy.io import fits

from webbcal.errors import WebbcalError
from webbcal.preview.headers import parse_value, primary_keywords, scan_keywords


@pytest.mark.parametrize("field, value", [
    ("                   12 / a count", 12), ("                  -1.5E-3", -1.5e-3),
    ("                    T", True), ("'NRC_WFSS'           / exposure type", "NRC_WFSS"),
    ("'it''s /not a comment'", "it's /not a comment"), ("                 1.0D2", 100.0), ("", None),
])
def test_parse_value_reads_every_kind_of_fits_value(field, value):
    assert parse_value(field) == value


def test_scanned_keywords_agree_with_astropy_for_every_hdu(wfss_cal_file):
    scanned = scan_keywords(wfss_cal_file, ("SLTSTRT1", "SLTSIZE2", "SPORDER", "EXP_TYPE"))
    with fits.open(wfss_cal_file) as hdul:
        assert len(scanned) == len(hdul)
        for cards, hdu in zip(scanned, hdul):
            for key in ("EXTNAME", "EXTVER", "SLTSTRT1", "SLTSIZE2", "SPORDER", "EXP_TYPE", "NAXIS1", "NAXIS2"):
                assert cards.get(key) == hdu.header.get(key), (hdu.name, key)
    assert primary_keywords(wfss_cal_file, ("DATAMODL",))["DATAMODL"] == "MultiSlitModel"


def test_a_truncated_file_is_a_one_line_error(wfss_cal_file, tmp_path):
    cut = tmp_path / "cut_cal.fits"
    cut.write_bytes(wfss_cal_file.read_bytes()[:-1000])
    with pytest.raises(WebbcalError, match="cut_cal.fits: truncated"):
        scan_keywords(cut, ("SLTSTRT1",))
