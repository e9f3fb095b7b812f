"""Generation on real DMS pools equals the official asn_generate output kept in
/work/shared/data/pools/expected/ (jwst 3.0.0, --version-id 20251216t202003).

Compared: file names, every top-level key, product names and complete member dicts, in
order. Ignored, and why: ``code_version`` (names the generating software) and
``constraints`` (the official rule engine's textual dump, informational only).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.asn.conftest import POOLS, VERSION_ID, comparable
from webbcal.asn import generate_associations, read_association
from webbcal.commands.asn import asn as asn_command

POOL_NAMES = ["pool_032_nircam_wfss", "pool_033_wfs_jitter"]


def _expected(pool_name) -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted((POOLS / "expected" / pool_name).glob("*.json"))}


@pytest.mark.parametrize("pool_name", POOL_NAMES)
def test_cli_generate_equals_official(pool_name, tmp_path):
    result = CliRunner().invoke(asn_command, ["generate", str(POOLS / f"{pool_name}.csv"), "-o", str(tmp_path),
                                              "--version-id", VERSION_ID], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    expected = _expected(pool_name)
    written = {p.name: json.loads(p.read_text()) for p in sorted(tmp_path.glob("*_asn.json"))}
    assert sorted(written) == sorted(expected)
    for name, official in expected.items():
        assert comparable(written[name]) == comparable(official), name
    assert not list(tmp_path.glob(".webbcal-tmp-*"))


def test_pool_032_contents():
    """The WFSS pool: what each association type holds, spelled out."""
    asns = dict(generate_associations(POOLS / "pool_032_nircam_wfss.csv", version_id=VERSION_ID))
    by_type = {}
    for asn in asns.values():
        by_type.setdefault(asn.asn_type, []).append(asn)
    assert {t: len(v) for t, v in by_type.items()} == {"image2": 4, "image3": 2, "spec2": 2, "spec3": 1}
    image3_names = {a.products[0].name for a in by_type["image3"]}
    assert image3_names == {"jw01243-o001_t001_nircam_clear-f356w", "jw01243-o001_t001_nircam_clear-f200w"}
    for spec2 in by_type["spec2"]:
        product = spec2.products[0]
        assert len(product.members_of_type("science")) == 1
        root = product.members_of_type("direct_image")[0].expname.removesuffix("_i2d.fits")
        assert root == "jw01243-o001_t001_nircam_clear-f356w"  # the direct image after the grism (EXPSPCIN 3)
        assert [m.expname for m in product.members_of_type("sourcecat")] == [root + "_cat.ecsv"]
        assert [m.expname for m in product.members_of_type("segmap")] == [root + "_segm.fits"]
    spec3 = by_type["spec3"][0].products[0]
    assert spec3.name == "jw01243-o001_t001_nircam_f356w-grismr"
    assert len(spec3.members_of_type("science")) == 2


def test_pool_033_excludes_jitter_and_keeps_target_acquisition():
    asns = dict(generate_associations(POOLS / "pool_033_wfs_jitter.csv", version_id=VERSION_ID))
    rules = sorted(a.asn_rule for a in asns.values())
    assert rules == ["candidate_Asn_Lv2ImageNonScience"] + ["candidate_Asn_Lv2WFSC"] * 5
    members = {m.expname for a in asns.values() for m in a.members_of_type("science")}
    assert not any("03102" in name for name in members)  # the 21 line-of-sight jitter images


@pytest.mark.parametrize("pool_name", POOL_NAMES)
def test_written_files_pass_official_loader(pool_name, tmp_path):
    """Our writer's files load and validate with jwst.associations.load_asn (schema check)."""
    from jwst.associations import load_asn

    from webbcal.asn import write_associations

    for path in write_associations(POOLS / f"{pool_name}.csv", tmp_path, version_id=VERSION_ID):
        with open(path) as handle:
            official = load_asn(handle)
        ours = read_association(path)
        assert official["asn_type"] == ours.asn_type
        assert [p["name"] for p in official["products"]] == [p.name for p in ours.products]
