"""Reading and writing association files: round trips, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
from astropy.io import fits
from click.testing import CliRunner

from tests.asn.conftest import POOLS
from webbcal.asn import Association, Member, Product, member_path, read_association, write_association
from webbcal.commands.asn import asn as asn_command
from webbcal.errors import WebbcalError

EXPECTED = sorted((POOLS / "expected").glob("*/*_asn.json"))
VALID = {"asn_type": "image2", "products": [{"name": "jw01_rate", "members": [
    {"expname": "jw01_rate.fits", "exptype": "science"}]}]}


@pytest.mark.parametrize("path", EXPECTED, ids=lambda p: p.name)
def test_official_files_round_trip(path, tmp_path):
    """Every key of an official association survives read -> write -> JSON, in value and order."""
    asn = read_association(path)
    out = write_association(asn, tmp_path / path.name)
    original = json.loads(path.read_text())
    written = json.loads(out.read_text())
    assert written == original
    assert list(written) == list(original)
    assert read_association(out) == asn


def test_api_used_by_the_workflow():
    path = POOLS / "expected/pool_032_nircam_wfss/jw01243-o001_20251216t202003_spec2_00001_asn.json"
    asn = read_association(path)
    assert asn.asn_type == "spec2" and asn.asn_id == "o001" and asn.program == "01243"
    product = asn.products[0]
    assert product.name == "jw01243001001_02101_00002_nrcalong"
    assert [m.expname for m in product.members_of_type("science")] == ["jw01243001001_02101_00002_nrcalong_rate.fits"]
    assert [m.expname for m in product.members_of_type("SOURCECAT")] == ["jw01243-o001_t001_nircam_clear-f356w_cat.ecsv"]
    assert asn.problems() == []


# (name, file text, words the one-line problem must contain)
MALFORMED = [
    ("empty file", "", "not valid JSON"),
    ("truncated", json.dumps(VALID)[:40], "not valid JSON"),
    ("trailing garbage", json.dumps(VALID) + "}", "not valid JSON"),
    ("yaml instead of json", "asn_type: image2\nproducts: []\n", "not valid JSON"),
    ("a list", json.dumps([VALID]), "must be a JSON object"),
    ("a string", json.dumps("products"), "must be a JSON object"),
    ("null", "null", "must be a JSON object"),
    ("no products", json.dumps({"asn_type": "image2"}), "missing required key 'products'"),
    ("empty products", json.dumps({"products": []}), "'products' must be a non-empty list"),
    ("products an object", json.dumps({"products": {"name": "x"}}), "'products' must be a non-empty list"),
    ("product a string", json.dumps({"products": ["x"]}), "products[0] must be an object"),
    ("no members", json.dumps({"products": [{"name": "x"}]}), "missing required key 'members'"),
    ("empty members", json.dumps({"products": [{"name": "x", "members": []}]}), "members must be a non-empty list"),
    ("member a string", json.dumps({"products": [{"name": "x", "members": ["a.fits"]}]}), "members[0] must be an object"),
    ("no expname", json.dumps({"products": [{"name": "x", "members": [{"exptype": "science"}]}]}),
     "missing required key 'expname'"),
    ("no exptype", json.dumps({"products": [{"name": "x", "members": [{"expname": "a.fits"}]}]}),
     "missing required key 'exptype'"),
    ("expname a number", json.dumps({"products": [{"name": "x", "members": [{"expname": 3, "exptype": "science"}]}]}),
     "expname must be a non-empty string"),
    ("product name a list", json.dumps({"products": [{"name": ["x"], "members": [
        {"expname": "a.fits", "exptype": "science"}]}]}), "name must be a non-empty string"),
    ("asn_type a number", json.dumps({**VALID, "asn_type": 2}), "'asn_type' must be a string"),
    ("duplicate member", json.dumps({"products": [{"name": "x", "members": [
        {"expname": "a_cal.fits", "exptype": "science"}, {"expname": "a_cal.fits", "exptype": "science"}]}]}),
     "member 'a_cal.fits' appears 2 times"),
    ("duplicate product", json.dumps({"products": [VALID["products"][0], VALID["products"][0]]}),
     "product 'jw01_rate' appears 2 times"),
]


@pytest.mark.parametrize("name,text,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_association_is_one_line_error(name, text, words, tmp_path):
    path = tmp_path / "bad_asn.json"
    path.write_text(text)
    with pytest.raises(WebbcalError) as info:
        read_association(path)
    message = str(info.value)
    assert info.value.path == str(path) and message.startswith(str(path))
    assert words in message and "\n" not in message


def test_not_utf8_and_missing_file(tmp_path):
    binary = tmp_path / "binary_asn.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(WebbcalError, match="cannot read association"):
        read_association(binary)
    with pytest.raises(WebbcalError, match="No such file"):
        read_association(tmp_path / "absent_asn.json")


def _write_members(directory, instruments):
    members = []
    for i, instrument in enumerate(instruments):
        name = f"jw01_{i}_cal.fits"
        header = fits.Header()
        header["INSTRUME"] = instrument
        fits.PrimaryHDU(header=header).writeto(directory / name)
        members.append(Member(name, "science"))
    return members


def test_check_members_missing_file(tmp_path):
    members = _write_members(tmp_path, ["NIRCAM"]) + [Member("jw01_9_cal.fits", "science")]
    path = write_association(Association([Product("jw01-o001_t001_nircam_clear-f200w", members)], asn_type="image3"),
                             tmp_path / "a_asn.json")
    assert read_association(path).products[0].name  # without the check it reads fine
    with pytest.raises(WebbcalError, match=r"member 'jw01_9_cal.fits' of product .* not found in") as info:
        read_association(path, check_members=True)
    assert info.value.path == str(path)


def test_check_members_mixed_instruments(tmp_path):
    members = _write_members(tmp_path, ["NIRCAM", "NIRCAM", "NIRISS"])
    path = write_association(Association([Product("p", members)], asn_type="image3"), tmp_path / "a_asn.json")
    with pytest.raises(WebbcalError, match=r"more than one instrument: NIRCAM \(jw01_0_cal.fits\), NIRISS"):
        read_association(path, check_members=True)
    same = write_association(Association([Product("p", members[:2])], asn_type="image3"), tmp_path / "b_asn.json")
    assert len(read_association(same, check_members=True).members_of_type("science")) == 2


def test_members_resolve_relative_to_association_directory(tmp_path, monkeypatch):
    (tmp_path / "asn").mkdir()
    members = _write_members(tmp_path / "asn", ["NIRCAM"])
    write_association(Association([Product("p", members)], asn_type="image3"), tmp_path / "asn" / "a_asn.json")
    monkeypatch.chdir(tmp_path)  # members are not in the working directory
    asn = read_association("asn/a_asn.json", check_members=True)
    resolved = [member_path("asn/a_asn.json", m).resolve() for m in asn.products[0].members]
    assert resolved == [(tmp_path / "asn" / m.expname).resolve() for m in members]
    assert all(p.is_file() for p in resolved)


def test_product_name_defaults_to_science_member(tmp_path):
    path = tmp_path / "a_asn.json"
    path.write_text(json.dumps({"products": [{"members": [{"expname": "jw02_00001_nrca1_rate.fits",
                                                          "exptype": "science"}]}]}))
    asn = read_association(path)
    assert asn.products[0].name == "jw02_00001_nrca1"
    assert asn.asn_type == "user_built"


def test_failed_write_leaves_nothing(tmp_path):
    asn = Association([Product("p", [Member("a.fits", "science")])], extra={"bad": object()})
    with pytest.raises(TypeError):
        write_association(asn, tmp_path / "a_asn.json")
    assert list(tmp_path.iterdir()) == []


def test_cli_show_and_error(tmp_path):
    good = POOLS / "expected/pool_032_nircam_wfss/jw01243-o001_20251216t202003_image3_00001_asn.json"
    result = CliRunner().invoke(asn_command, ["show", str(good)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "product jw01243-o001_t001_nircam_clear-f356w  (2 members)" in result.output
    assert "science            jw01243001001_05101_00001_nrcalong_cal.fits" in result.output
    bad = tmp_path / "bad_asn.json"
    bad.write_text("{")
    result = CliRunner().invoke(asn_command, ["show", str(bad)])
    assert isinstance(result.exception, WebbcalError) and str(bad) in str(result.exception)
