"""CRDS-like selection: selectors, wildcards, specificity, USEAFTER, ties, messages."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webbcal.errors import ReferenceNotFound
from webbcal.refs.selection import Entry, choose, exposure_time, parse_time

from .conftest import science_header


def entry(file, reftype="gain", useafter="2022-01-01T00:00:00", **selectors):
    return Entry(file=file, reftype=reftype, selectors={"INSTRUME": "NIRCAM", **selectors}, useafter=useafter)


def test_detector_must_match():
    entries = [entry("a1.fits", DETECTOR="NRCA1", SUBARRAY="FULL"),
               entry("b1.fits", DETECTOR="NRCB1", SUBARRAY="FULL")]
    assert choose(entries, "gain", science_header(DETECTOR="NRCB1")).file == "b1.fits"
    assert choose(entries, "gain", science_header(DETECTOR="NRCA1")).file == "a1.fits"


def test_readpatt_and_wildcards():
    entries = [entry("rapid.fits", "readnoise", DETECTOR="NRCA1", READPATT="RAPID", SUBARRAY="FULL"),
               entry("any.fits", "readnoise", DETECTOR="NRCA1", READPATT="ANY", SUBARRAY="FULL"),
               entry("deep.fits", "readnoise", DETECTOR="NRCA1", READPATT="DEEP8|DEEP2|", SUBARRAY="FULL")]
    assert choose(entries, "readnoise", science_header(READPATT="RAPID")).file == "rapid.fits"
    assert choose(entries, "readnoise", science_header(READPATT="DEEP2")).file == "deep.fits"
    assert choose(entries, "readnoise", science_header(READPATT="MEDIUM8")).file == "any.fits"


def test_missing_selector_matches_anything():
    entries = [entry("nodet.fits", "saturation")]
    assert choose(entries, "saturation", science_header(DETECTOR="NRCBLONG")).file == "nodet.fits"


def test_subarray_exact_beats_full_frame_and_dark_needs_exact():
    entries = [entry("full.fits", DETECTOR="NRCA1", SUBARRAY="FULL"),
               entry("sub.fits", DETECTOR="NRCA1", SUBARRAY="SUB640")]
    assert choose(entries, "gain", science_header(SUBARRAY="SUB640")).file == "sub.fits"
    assert choose(entries, "gain", science_header(SUBARRAY="SUB160")).file == "full.fits"
    darks = [entry("dfull.fits", "dark", DETECTOR="NRCA1", EXP_TYPE="NRC_IMAGE", NOUTPUTS=4, SUBARRAY="FULL")]
    with pytest.raises(ReferenceNotFound, match="SUBARRAY=SUB160 not offered"):
        choose(darks, "dark", science_header(SUBARRAY="SUB160"))
    darks.append(entry("d160.fits", "dark", DETECTOR="NRCA1", EXP_TYPE="NRC_IMAGE", NOUTPUTS=1, SUBARRAY="SUB160"))
    assert choose(darks, "dark", science_header(SUBARRAY="SUB160", NOUTPUTS=1)).file == "d160.fits"
    with pytest.raises(ReferenceNotFound, match="NOUTPUTS=4 not offered"):
        choose(darks, "dark", science_header(SUBARRAY="SUB160", NOUTPUTS=4))


def test_useafter_latest_not_after_observation():
    entries = [entry(f"g{y}.fits", DETECTOR="NRCA1", useafter=f"{y}-01-01T00:00:00") for y in (2021, 2022, 2024)]
    assert choose(entries, "gain", science_header(**{"DATE-OBS": "2023-12-31"})).file == "g2022.fits"
    assert choose(entries, "gain", science_header(**{"DATE-OBS": "2024-01-01", "TIME-OBS": "00:00:00"})).file == "g2024.fits"
    # USEAFTER a second after the observation start is not usable
    late = [entry("late.fits", DETECTOR="NRCA1", useafter="2023-06-01T12:00:01")]
    with pytest.raises(ReferenceNotFound, match="USEAFTER on or before"):
        choose(late, "gain", science_header(**{"DATE-OBS": "2023-06-01", "TIME-OBS": "12:00:00.5"}))


def test_ties_broken_by_greatest_file_name():
    entries = [entry("jwst_nircam_gain_0003.fits", DETECTOR="NRCA1"),
               entry("jwst_nircam_gain_0010.fits", DETECTOR="NRCA1"),
               entry("jwst_nircam_gain_0007.fits", DETECTOR="NRCA1")]
    for order in (entries, entries[::-1], entries[1:] + entries[:1]):
        assert choose(order, "gain", science_header()).file == "jwst_nircam_gain_0010.fits"


def test_no_match_message_names_reftype_selectors_and_offer():
    entries = [entry("a.fits", "flat", DETECTOR="NRCA1", FILTER="F150W", PUPIL="CLEAR"),
               entry("b.fits", "flat", DETECTOR="NRCA1", FILTER="F090W", PUPIL="CLEAR")]
    with pytest.raises(ReferenceNotFound) as info:
        choose(entries, "flat", science_header(FILTER="F200W"), where="cache/manifest.json")
    message = str(info.value)
    assert message.startswith("cache/manifest.json: no flat reference matches")
    assert "FILTER=F200W not offered (cache has F090W, F150W)" in message
    assert "PUPIL=CLEAR not offered" not in message  # only the selector that failed is blamed
    assert "\n" not in message
    with pytest.raises(ReferenceNotFound, match="no gain reference in the cache at all"):
        choose(entries, "gain", science_header())


def test_time_parsing_forms():
    assert parse_time("2022-01-01T00:00:00") == dt.datetime(2022, 1, 1)
    assert parse_time("2022-01-01 10:11:12.123456789") == dt.datetime(2022, 1, 1, 10, 11, 12, 123456)
    assert parse_time("Jan 01 2015 00:00:00") == dt.datetime(2015, 1, 1)
    assert exposure_time({"DATE-OBS": "2023-06-01", "TIME-OBS": "12:00:00.250"}) == dt.datetime(2023, 6, 1, 12, 0, 0, 250000)


_days = st.integers(min_value=0, max_value=4000)


@settings(max_examples=200, deadline=None)
@given(useafters=st.lists(_days, min_size=1, max_size=12), observed=_days)
def test_chosen_useafter_is_the_latest_not_after_the_observation(useafters, observed):
    base = dt.datetime(2015, 1, 1)
    entries = [entry(f"g{i:03d}.fits", DETECTOR="NRCA1", useafter=(base + dt.timedelta(days=d)).isoformat())
               for i, d in enumerate(useafters)]
    obs = base + dt.timedelta(days=observed, hours=1)
    header = science_header(**{"DATE-OBS": obs.date().isoformat(), "TIME-OBS": obs.time().isoformat()})
    usable = [d for d in useafters if d <= observed]
    if not usable:
        with pytest.raises(ReferenceNotFound):
            choose(entries, "gain", header)
        return
    chosen = choose(entries, "gain", header)
    assert parse_time(chosen.useafter) == base + dt.timedelta(days=max(usable))
    # ties: the greatest file name among the equally dated
    tied = [f"g{i:03d}.fits" for i, d in enumerate(useafters) if d == max(usable)]
    assert chosen.file == max(tied)
