"""Generation from a directory of Level-1b headers (what the workflow checkpoint does)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.asn.conftest import comparable, make_exposure, official_associations, official_pool_from_directory
from webbcal.asn import generate_associations, pool_from_exposures, read_association
from webbcal.commands.asn import asn as asn_command
from webbcal.errors import WebbcalError


def _by_type(asns):
    grouped = {}
    for name, asn in asns:
        grouped.setdefault(asn.asn_type, []).append(asn)
    return grouped


def test_directory_groups_like_the_rules(wfss_dir):
    directory, names = wfss_dir
    grouped = _by_type(generate_associations(directory))

    # image2: one per imaging exposure (dithers, every detector, and the direct image)
    imaging = names["image"] + names["direct"]
    assert sorted(a.products[0].members_of_type("science")[0].expname for a in grouped["image2"]) == \
        sorted(n.replace("_uncal", "_rate") for n in imaging)
    for asn in grouped["image2"]:
        product = asn.products[0]
        assert product.name + "_rate.fits" == product.members[0].expname

    # image3: one per filter/pupil, all detectors and dithers together
    image3 = {a.products[0].name: sorted(m.expname for m in a.members_of_type("science")) for a in grouped["image3"]}
    assert sorted(image3) == ["jw01243-o001_t001_nircam_clear-f200w", "jw01243-o001_t001_nircam_clear-f356w"]
    assert len(image3["jw01243-o001_t001_nircam_clear-f200w"]) == 4
    assert len(image3["jw01243-o001_t001_nircam_clear-f356w"]) == 3  # 2 dithers + the direct image

    # spec2: one per grism exposure, naming the direct-image image3 products
    assert len(grouped["spec2"]) == len(names["grism"])
    for asn in grouped["spec2"]:
        product = asn.products[0]
        (science,) = product.members_of_type("science")
        assert science.expname.replace("_rate", "_uncal") in names["grism"]
        root = "jw01243-o001_t001_nircam_clear-f356w"
        assert root in image3
        assert {(m.expname, m.exptype) for m in product.members if m.exptype != "science"} == {
            (root + "_i2d.fits", "direct_image"), (root + "_cat.ecsv", "sourcecat"), (root + "_segm.fits", "segmap")}

    # spec3: both grism exposures
    (spec3,) = grouped["spec3"]
    assert spec3.products[0].name == "jw01243-o001_t001_nircam_f356w-grismr"
    assert len(spec3.members_of_type("science")) == 2


def test_directory_equals_official_mkpool_and_generator(wfss_dir, tmp_path):
    """Same exposures through jwst's mkpool + asn_generate: identical associations."""
    directory, _ = wfss_dir
    pool_file = official_pool_from_directory(directory, tmp_path / "program_pool.csv")
    official = official_associations(pool_file, tmp_path / "official", version_id="v1")
    ours = generate_associations(pool_from_exposures(directory, name=pool_file.name), version_id="v1")
    assert [name for name, _ in ours] == sorted(official)
    for name, asn in ours:
        assert comparable(asn.to_dict()) == comparable(official[name]), name


def test_cli_generate_from_directory(wfss_dir, tmp_path):
    directory, names = wfss_dir
    out = tmp_path / "asn"
    result = CliRunner().invoke(asn_command, ["generate", str(directory), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*_asn.json"))
    assert len(files) == len(names["image"]) + len(names["direct"]) + 2 + 2 + 1
    assert all(f.name.startswith("jw01243-o001_") and "_20" not in f.name for f in files)  # no version id
    for file in files:  # every member the image2/spec2 need exists once detector1 ran: rate next to uncal
        asn = read_association(file)
        assert asn.problems() == []
    shown = CliRunner().invoke(asn_command, ["show", str(files[0])], catch_exceptions=False)
    assert shown.exit_code == 0 and "product " in shown.output


def test_two_observations_each_and_discovered_together(tmp_path):
    """One image3 per observation candidate, plus the official "discovered" a3001 one
    spanning both observations (asn_generate's default mode)."""
    uncal = tmp_path / "uncal"
    uncal.mkdir()
    for obs in ("001", "002"):
        for exposure in (1, 2):
            make_exposure(uncal, obs=obs, exposure=exposure, detector="nrca1", filter_="F150W")
    image3 = {name: asn for name, asn in generate_associations(uncal) if "_image3_" in name}
    assert sorted(image3) == ["jw01243-a3001_image3_00001_asn.json", "jw01243-o001_image3_00001_asn.json",
                              "jw01243-o002_image3_00001_asn.json"]
    assert len(image3["jw01243-a3001_image3_00001_asn.json"].members_of_type("science")) == 4
    assert image3["jw01243-a3001_image3_00001_asn.json"].asn_rule == "discover_Asn_Lv3Image"

    pool_file = official_pool_from_directory(uncal, tmp_path / "two_pool.csv")
    official = official_associations(pool_file, tmp_path / "official", version_id="v2")
    ours = generate_associations(pool_from_exposures(uncal, name=pool_file.name), version_id="v2")
    assert [name for name, _ in ours] == sorted(official)
    for name, asn in ours:
        assert comparable(asn.to_dict()) == comparable(official[name]), name


def test_background_target_exposures_join_image2(tmp_path):
    science = make_exposure(tmp_path, exposure=1, detector="nrca1")
    background = make_exposure(tmp_path, exposure=2, detector="nrca1", bkgdtarg=True)
    grouped = _by_type(generate_associations(tmp_path))
    with_background = [a for a in grouped["image2"] if a.asn_rule == "candidate_Asn_Lv2Image"]
    (asn,) = with_background
    assert [(m.expname, m.exptype) for m in asn.products[0].members] == [
        (science.replace("_uncal", "_rate"), "science"), (background.replace("_uncal", "_rate"), "background")]
    special = [a for a in grouped["image2"] if a.asn_rule == "candidate_Asn_Lv2ImageSpecial"]
    assert [a.products[0].name + "_uncal.fits" for a in special] == [background]
    # a background target is not part of the science mosaic (the official generator also makes
    # an Asn_Lv3ImageBackground image3 of the background alone, under the same product name)
    image3 = {a.asn_rule: [m.expname for m in a.members_of_type("science")] for a in grouped["image3"]}
    assert image3 == {"candidate_Asn_Lv3Image": [science.replace("_uncal", "_cal")],
                      "candidate_Asn_Lv3ImageBackground": [background.replace("_uncal", "_cal")]}


def test_background_and_acquisition_equal_official(tmp_path):
    uncal = tmp_path / "uncal"
    uncal.mkdir()
    make_exposure(uncal, exposure=1, detector="nrca1")
    make_exposure(uncal, exposure=2, detector="nrca1", bkgdtarg=True)
    make_exposure(uncal, exposure=3, detector="nrca1", exp_type="NRC_TACQ")
    pool_file = official_pool_from_directory(uncal, tmp_path / "bkg_pool.csv")
    official = official_associations(pool_file, tmp_path / "official", version_id="v3")
    ours = generate_associations(pool_from_exposures(uncal, name=pool_file.name), version_id="v3")
    assert [name for name, _ in ours] == sorted(official)
    for name, asn in ours:
        assert comparable(asn.to_dict()) == comparable(official[name]), name


def test_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(WebbcalError, match="no FITS exposures") as info:
        generate_associations(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
def test_unreadable_exposure_is_named(tmp_path):
    make_exposure(tmp_path)
    bad = tmp_path / "jw01243001001_02101_00009_nrca1_uncal.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b"\0" * 10)
    with pytest.raises(WebbcalError) as info:
        generate_associations(tmp_path)
    assert info.value.path == str(bad) and "\n" not in str(info.value)
