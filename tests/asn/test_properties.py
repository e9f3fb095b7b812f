"""Property-based tests (hypothesis) of the association reader, writer and generator."""

from __future__ import annotations

import json
import logging
import re
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.asn.conftest import comparable, official_associations, pool_row, write_pool
from webbcal.asn import Association, Member, Product, generate_associations, read_association, write_association
from webbcal.asn.pool import Pool
from webbcal.errors import WebbcalError

# ---------- strategies ----------
names = st.text(min_size=1, max_size=12)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


def extras(reserved):
    return st.dictionaries(st.text(max_size=8).filter(lambda k: k not in reserved), json_values, max_size=3)


members = st.builds(Member, expname=names, exptype=st.sampled_from(["science", "background", "sourcecat"]) | names,
                    extra=extras({"expname", "exptype"}))
products = st.builds(Product, name=names, members=st.lists(members, min_size=1, max_size=4, unique_by=lambda m: m.expname),
                     extra=extras({"name", "members"}))
associations = st.builds(
    Association, products=st.lists(products, min_size=1, max_size=3, unique_by=lambda p: p.name),
    asn_type=names, asn_rule=names, asn_id=names, asn_pool=names, program=names, target=names,
    version_id=st.none() | names, degraded_status=names,
    extra=extras({"asn_type", "asn_rule", "asn_id", "asn_pool", "program", "target", "version_id",
                  "degraded_status", "products"}))


@st.composite
def pools(draw, with_backgrounds=True, max_rows=9):
    """Small NIRCam pools: imaging, WFSS grism, target acquisitions; two observations,
    optional mosaic/background candidates, subarrays, two targets."""
    rows = []
    for index in range(draw(st.integers(1, max_rows))):
        exp_type = draw(st.sampled_from(["nrc_image", "nrc_image", "nrc_wfss", "nrc_tacq"]))
        rows.append(pool_row(
            obs=draw(st.sampled_from([1, 2])), visitgrp=draw(st.integers(2, 5)), exposure=index + 1,
            detector=draw(st.sampled_from(["nrca1", "nrcb1", "nrcalong"])), exp_type=exp_type,
            filter_=draw(st.sampled_from(["f200w", "f356w"])),
            pupil=draw(st.sampled_from(["grismr", "grismc"])) if exp_type == "nrc_wfss" else "clear",
            subarray=draw(st.sampled_from(["full", "full", "sub640"])), targetid=draw(st.sampled_from(["1", "2"])),
            bkgdtarg=draw(st.sampled_from(["f", "f", "t"])) if with_backgrounds else "f",
            expspcin=str(draw(st.integers(1, 5))),
            extra_candidates=draw(st.sampled_from([(), (("c1000", "mosaic"),), (("c1001", "background"),)])),
            exposerr=draw(st.sampled_from(["null", "null", "some error"]))))
    return rows


# ---------- reader / writer ----------
@settings(max_examples=150, database=None, deadline=None)
@given(asn=associations)
def test_write_read_round_trip_is_identity(asn):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_association(asn, Path(tmp) / "x_asn.json")
        assert read_association(path) == asn
        assert [p.name for p in Path(tmp).iterdir()] == ["x_asn.json"]  # no temporary left


MUTATIONS = ["truncate", "drop_products", "drop_members", "drop_expname", "drop_exptype", "members_not_list",
             "member_not_object", "products_wrong_type", "top_not_object", "duplicate_member", "garbage_prefix"]


def _mutate(data: dict, mutation: str, where: int) -> str:
    product = data["products"][where % len(data["products"])]
    member = product["members"][where % len(product["members"])]
    if mutation == "truncate":
        text = json.dumps(data)
        return text[: where % (len(text) - 1)]
    if mutation == "drop_products":
        del data["products"]
    elif mutation == "drop_members":
        del product["members"]
    elif mutation == "drop_expname":
        del member["expname"]
    elif mutation == "drop_exptype":
        del member["exptype"]
    elif mutation == "members_not_list":
        product["members"] = member
    elif mutation == "member_not_object":
        product["members"][where % len(product["members"])] = member["expname"]
    elif mutation == "products_wrong_type":
        data["products"] = "products"
    elif mutation == "top_not_object":
        data = [data]
    elif mutation == "duplicate_member":
        product["members"].append(dict(member))
    elif mutation == "garbage_prefix":
        return "#" + json.dumps(data)
    return json.dumps(data)


@settings(max_examples=150, database=None, deadline=None)
@given(asn=associations, mutation=st.sampled_from(MUTATIONS), where=st.integers(0, 10_000))
def test_malformed_variants_give_one_line_error_naming_the_file(asn, mutation, where):
    text = _mutate(asn.to_dict(), mutation, where)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad_asn.json"
        path.write_text(text)
        try:
            read_association(path)
        except WebbcalError as error:
            assert error.path == str(path) and "\n" not in str(error)
        else:
            raise AssertionError(f"{mutation} was accepted")


@settings(max_examples=200, database=None, deadline=None)
@given(text=st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_never_crashes_the_reader(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "any_asn.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            read_association(path)
        except WebbcalError as error:
            assert "\n" not in str(error)


# ---------- generator ----------
NAME = re.compile(r"jw\d{5}-(o\d{3}|c\d{4}|a\d{4})_v1_(image2|image3|spec2|spec3)_(\d{5})_asn\.json")


@settings(max_examples=120, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=pools())
def test_generated_associations_always_validate(rows):
    generated = generate_associations(Pool(rows, "p_pool.csv"), version_id="v1")
    names = [name for name, _ in generated]
    assert len(set(names)) == len(names)
    sequences = {}
    for name, asn in generated:
        match = NAME.fullmatch(name)
        assert match and (match[1], match[2]) == (asn.asn_id, asn.asn_type)
        sequences.setdefault((asn.asn_id, asn.asn_type), []).append(int(match[3]))
        # every member once, Level-2 products exactly one science, Level-3 at least one
        assert asn.problems() == [], (name, asn.problems())
        if asn.asn_type in ("image2", "spec2"):
            assert asn.asn_id.startswith("o") or asn.members_of_type("background")
        with tempfile.TemporaryDirectory() as tmp:
            assert read_association(write_association(asn, Path(tmp) / name)) == asn
    for numbers in sequences.values():
        assert sorted(numbers) == list(range(1, len(numbers) + 1))


@settings(max_examples=120, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=pools())
def test_spec2_names_an_image3_product_of_its_candidate(rows):
    """With full-frame direct images, the direct-image products an observation's spec2 names
    are exactly those an image3 association of the same observation produces. (Officially, a
    spec2 of a *background* candidate names products of an image3 that the rules never make
    for a single observation: such spec2 associations are left out here.)"""
    rows = [dict(row, subarray="full") for row in rows]
    generated = [asn for _, asn in generate_associations(Pool(rows, "p_pool.csv"))]
    image3 = {(a.asn_id, a.products[0].name) for a in generated if a.asn_type == "image3"}
    for spec2 in (a for a in generated if a.asn_rule == "candidate_Asn_Lv2WFSSNRC" and a.asn_id.startswith("o")):
        (direct,) = spec2.members_of_type("direct_image")
        root = direct.expname.removesuffix("_i2d.fits")
        assert (spec2.asn_id, root) in image3
        assert {m.expname for m in spec2.products[0].members if m.exptype in ("sourcecat", "segmap")} == {
            root + "_cat.ecsv", root + "_segm.fits"}


@settings(max_examples=25, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=pools(max_rows=8))
def test_generator_equals_official_on_random_pools(rows):
    """The official asn_generate on the same random pool gives the same associations,
    to the member order and every top-level key but code_version and constraints."""
    logging.disable(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pool_file = write_pool(rows, Path(tmp) / "r_pool.csv")
            official = official_associations(pool_file, Path(tmp) / "official", version_id="v1")
            ours = generate_associations(pool_file, version_id="v1")
            assert [name for name, _ in ours] == sorted(official)
            for name, asn in ours:
                assert comparable(asn.to_dict()) == comparable(official[name]), name
    finally:
        logging.disable(logging.NOTSET)
