"""Frame/group timing and readout tables against the JDox formulas (detector1.md §6)."""

import pytest

from webbcal.errors import WebbcalError
from webbcal.simulate.readout import READ_PATTERNS, ExposureTiming, frame_time, read_pattern, subarray


def test_full_frame_tframe_is_the_official_value():
    assert frame_time(2048, 2048, 4) == pytest.approx(10.73677, abs=1e-9)


def test_one_output_subarray_frame_time():
    # (ncols + 12) * (nrows + 2) * 10 us
    assert frame_time(640, 640, 1) == pytest.approx(652 * 642 * 1e-5)
    assert frame_time(64, 64, 1) == pytest.approx(76 * 66 * 1e-5)


@pytest.mark.parametrize("name,nframes,groupgap,tgroup", [
    ("RAPID", 1, 0, 10.737), ("BRIGHT1", 1, 1, 21.474), ("BRIGHT2", 2, 0, 21.474),
    ("SHALLOW2", 2, 3, 53.684), ("SHALLOW4", 4, 1, 53.684), ("MEDIUM2", 2, 8, 107.368),
    ("MEDIUM8", 8, 2, 107.368), ("DEEP2", 2, 18, 214.735), ("DEEP8", 8, 12, 214.735)])
def test_read_patterns_and_full_frame_tgroup(name, nframes, groupgap, tgroup):
    p = READ_PATTERNS[name]
    assert (p.nframes, p.groupgap) == (nframes, groupgap)
    t = ExposureTiming(p, subarray("FULL"), 2, 1)
    assert t.tgroup == pytest.approx(tgroup, abs=1e-3)


def test_header_timing_keywords_bright2_10_groups():
    t = ExposureTiming(read_pattern("BRIGHT2"), subarray("FULL"), 10, 2)
    kw = t.keywords()
    assert kw["TFRAME"] == 10.73677 and kw["TGROUP"] == 21.47354
    assert kw["NFRAMES"] == 2 and kw["GROUPGAP"] == 0 and kw["NOUTPUTS"] == 4
    assert kw["EFFINTTM"] == pytest.approx(9 * 21.47354, abs=1e-4)
    assert kw["EFFEXPTM"] == pytest.approx(2 * 9 * 21.47354, abs=1e-4)
    # reset frame + 20 read frames per integration
    assert kw["DURATION"] == pytest.approx(2 * 21 * 10.73677, abs=1e-4)


def test_read_frames_skip_the_group_gap():
    t = ExposureTiming(read_pattern("SHALLOW4"), subarray("SUB160"), 3, 1)
    assert t.read_frame_indices().tolist() == [[0, 1, 2, 3], [5, 6, 7, 8], [10, 11, 12, 13]]
    assert t.nframes_total == 14


def test_bad_values_raise_one_line_errors():
    with pytest.raises(WebbcalError, match="DEEP8 allows 1..20"):
        ExposureTiming(read_pattern("DEEP8"), subarray("FULL"), 21, 1)
    with pytest.raises(WebbcalError, match="unknown NIRCam read pattern"):
        read_pattern("FAST")
    with pytest.raises(WebbcalError, match="unknown NIRCam imaging subarray"):
        subarray("SUB999")
