"""Generate associations from a pool, as the official ``asn_generate`` does per candidate.

For every candidate (``o001`` observation, ``c1000`` mosaic, ...), in order of first
appearance in the pool, the rows of that candidate are matched against each rule of
``webbcal.asn.rules`` in pool order. Level-2 rules hold one science exposure per
association (a second one opens a new association) plus the auxiliary rows of the same
key; Level-3 rules gather every row of a key. Finalisation then does what the official
``finalize``/``prune``/``resequence`` do: WFSS spec2 associations swap their raw direct
images for the Level-3 products of the closest one, invalid associations are dropped,
duplicates are pruned, and associations are numbered per (candidate, type) in the same
order as the official generator (which is why the numbering looks reversed).

As in ``asn_generate``'s default mode, Level-3 rules also run once over the whole pool
("discovered", id ``a3001``); those survive pruning only when no candidate association has
the same members (e.g. one filter observed in two observations). Only the rules in
``webbcal.asn.rules`` exist: TSO, coronagraphy, AMI, NIRSpec/MIRI and pure-parallel WFSS
exposures get no association of their own mode.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from webbcal import __version__
from webbcal.asn.model import DEGRADED_STATUS_OK, LEVEL3_KEY_ORDER, Association, Member, Product
from webbcal.asn.pool import Pool, candidates_of, is_set, pool_from_exposures, read_pool
from webbcal.asn.rules import (LEVEL2_RULES, LEVEL2B_EXP_TYPES, LEVEL3_RULES, UNSET, Candidate, Rule, exposure_type,
                               get, keys_match, level3_name_parts, merge_keys, uses_integrations)

DEGRADED_STATUS_NOTOK = ("One or more members have an error associated with them."
                         "\nDetails can be found in the member.exposerr attribute.")
MULTI_OBS_CANDIDATE_TYPES = ("group", "background", "mosaic")
DISCOVERED = Candidate("a3001", "discovered")  # the official generator gives them all this id
_LEVEL1B = re.compile(r"(?P<root>.+)_uncal(?P<ext>\..+)$")
_KNOWN_SUFFIX = re.compile(r"_(uncal|rate|rateints|cal|calints|x1d)$")


@dataclass
class _Draft:
    """An association being gathered: rows with their roles, in the order added."""

    rule: Rule
    candidate: Candidate
    key: tuple
    created_at: tuple  # (row index, rule index): creation order within the candidate
    rows: list = field(default_factory=list)  # [(row, role)]
    obs_nums: set = field(default_factory=set)  # OBS_NUM of rows matched by the rule itself

    def has(self, row) -> bool:
        return any(r is row for r, _ in self.rows)

    def add(self, row, role, by_rule: bool = False) -> None:
        if by_rule and get(row, "obs_num") is not None:
            self.obs_nums.add(get(row, "obs_num"))
        if not self.has(row):
            self.rows.append((row, role))

    def roles(self, role) -> list:
        return [r for r, rr in self.rows if rr == role]


def generate_associations(pool_or_dir, version_id: str | None = None) -> list[tuple[str, Association]]:
    """Associations for a pool file, a directory of exposures, or a ``Pool``.

    Returns ``[(file name, Association)]`` sorted by file name; names follow
    ``jw{program}-{acid}[_{version_id}]_{asn_type}_{seq:05d}_asn.json``.
    """
    pool = _as_pool(pool_or_dir)
    level2, level3 = [], []
    for candidate in _candidates(pool):
        rows = [row for row in pool.rows if candidate in _row_candidates(row)]
        level2 += _gather(rows, candidate, LEVEL2_RULES)
        level3 += _gather(rows, candidate, LEVEL3_RULES)
    # "Discovered" Level-3 associations across candidates; pruning keeps those whose
    # membership no candidate association has (Level-2 ones are never valid).
    level3 += _gather(pool.rows, DISCOVERED, LEVEL3_RULES)

    results = []
    for finalize, drafts in ((_finalize_level2, level2), (_finalize_level3, level3)):
        built = [asn for asn in (finalize(d, pool) for d in drafts) if asn is not None]
        for asn in built:
            asn.version_id = version_id
        for sequence, asn in _prune_and_sequence(built):
            results.append((asn_file_name(asn, sequence), asn))
    return sorted(results, key=lambda item: item[0])


def asn_file_name(asn: Association, sequence: int) -> str:
    stamp = f"_{asn.version_id}" if asn.version_id else ""
    return f"jw{asn.program}-{asn.asn_id}{stamp}_{asn.asn_type}_{sequence:05d}_asn.json".lower()


def _as_pool(pool_or_dir) -> Pool:
    if isinstance(pool_or_dir, Pool):
        return pool_or_dir
    path = Path(pool_or_dir)
    return pool_from_exposures(path) if path.is_dir() else read_pool(path)


def _row_candidates(row) -> list[Candidate]:
    return [Candidate(cid, ctype) for cid, ctype in candidates_of(row)]


def _candidates(pool: Pool) -> list[Candidate]:
    """Candidates grouped by type in order of first appearance (``ids_by_ctype``)."""
    by_type: dict[str, dict[str, None]] = {}
    for row in pool.rows:
        for candidate in _row_candidates(row):
            by_type.setdefault(candidate.type, {})[candidate.id] = None
    return [Candidate(cid, ctype) for ctype, ids in by_type.items() for cid in ids]


def _gather(rows, candidate: Candidate, rules) -> list[_Draft]:
    """Drafts of every rule over one candidate's rows, in official creation order."""
    drafts = []
    for rule_index, rule in enumerate(rules):
        drafts += _RulePass(rule, rule_index, candidate).run(rows)
    return sorted(drafts, key=lambda d: d.created_at)


class _RulePass:
    """One rule over one candidate's rows, in pool order.

    Rows that may only join existing associations (Level-2 backgrounds and direct images,
    Level-3 target acquisitions and target-less backgrounds) join those that exist when the
    row comes, and are offered again after the last row, as the official generator's
    re-processing queue does; that decides which associations get them, and member order.
    """

    def __init__(self, rule: Rule, rule_index: int, candidate: Candidate):
        self.rule, self.rule_index, self.candidate = rule, rule_index, candidate
        self.drafts: list[_Draft] = []
        self.revisits = []  # (row, match); match None for a target acquisition

    def run(self, rows) -> list[_Draft]:
        for index, row in enumerate(rows):
            match = self.rule.match(row, self.candidate)
            if match is not None:
                self._place(index, row, match)
            elif self.rule.level == 3 and _is_acquisition(row):
                self._offer_acquisition(row)
                self.revisits.append((row, None))
        # the official queue re-offers backgrounds and direct images before acquisitions
        for row, match in sorted(self.revisits, key=lambda item: item[1] is None):
            if match is None:
                self._offer_acquisition(row)
            else:
                self._join(row, match, [d for d in self.drafts if keys_match(d.key, match.key)])
        return self.drafts

    def _place(self, index, row, match) -> None:
        same_key = [d for d in self.drafts if keys_match(d.key, match.key)]
        if self.rule.level == 2 and match.role == "science":  # one science exposure each
            joinable = [] if self.rule.single else [d for d in same_key if not d.roles("science")]
        else:
            joinable = same_key
            if self.rule.level == 2 or match.key[2] is UNSET:
                self.revisits.append((row, match))
        if joinable:
            self._join(row, match, joinable)
        else:
            draft = _Draft(self.rule, self.candidate, match.key, (index, self.rule_index))
            draft.add(row, match.role, by_rule=True)
            self.drafts.append(draft)

    @staticmethod
    def _join(row, match, drafts) -> None:
        for draft in drafts:
            draft.key = merge_keys(draft.key, match.key)
            draft.add(row, match.role, by_rule=True)

    def _offer_acquisition(self, row) -> None:
        for draft in self.drafts:
            if _acquisition_fits(row, draft):
                _add_acquisition(draft, row)


def _is_acquisition(row) -> bool:
    return exposure_type(row) == "target_acquisition" and get(row, "is_imprt") is None


def _add_acquisition(draft: _Draft, row) -> None:
    """Add a target acquisition. Official quirk kept: joining runs the rule's target test on
    the acquisition first, so a draft with no target yet (begun by a background exposure)
    takes the acquisition's TARGETID."""
    if draft.key[2] is UNSET and get(row, "targetid") is not None:
        draft.key = draft.key[:2] + (get(row, "targetid"),) + draft.key[3:]
    draft.add(row, "target_acquisition")


def _acquisition_fits(row, draft: _Draft) -> bool:
    """Level 3 keeps the target acquisitions of the observations it covers (AsnMixin_Science)."""
    parts = level3_name_parts(draft.key)
    return ((get(row, "program"), get(row, "instrume")) == (parts["program"], parts["instrument"])
            and get(row, "obs_num") is not None and get(row, "obs_num") in draft.obs_nums)


def _renamed(filename: str, suffix: str) -> str:
    match = _LEVEL1B.match(filename)
    return f"{match['root']}_{suffix}{match['ext']}" if match else filename


def _level3_root(program, acid, target, instrument, opt_values, slit=None, subarray=None) -> str:
    """``jw{program}-{acid}_t{target}_{instrument}_{opt_elem}{-slit}{-subarray}``, lower case."""
    opt = "-".join(sorted((v for v in opt_values if v), key=str.lower)) or "clear"
    slit = f"-{slit}" if slit else ""
    subarray = f"-{subarray}" if subarray and subarray != "full" else ""
    return f"jw{program:0>5}-{acid}_t{target:0>3}_{instrument}_{opt}{slit}{subarray}".lower()


def _degraded_status(draft: _Draft) -> str:
    """Set by any exposure ever added, including WFSS direct images removed at finalisation."""
    return DEGRADED_STATUS_NOTOK if any(is_set(_exposerr(row)) for row, _ in draft.rows) else DEGRADED_STATUS_OK


def _rule_name(draft: _Draft) -> str:
    return f"{'discover' if draft.candidate == DISCOVERED else 'candidate'}_{draft.rule.name}"


def _candidate_value(row, candidate: Candidate) -> str:
    """What a Level-3 member records: the candidate it was generated for (discovered
    associations keep the row's full list)."""
    return row.get("asn_candidate", "null") if candidate == DISCOVERED else candidate.as_pool_value()


def _exposerr(row):
    return row.get("exposerr")  # None when the pool has no such column


def _closest_direct(science_row, directs):
    """The first direct image taken after the grism exposure (smallest positive EXPSPCIN
    difference); the first direct image when that cannot be told."""
    try:
        science_seq = int(get(science_row, "expspcin"))
    except (TypeError, ValueError):
        return directs[0]
    best, best_diff = directs[0], 9999
    for direct in directs:
        try:
            diff = int(get(direct, "expspcin")) - science_seq
        except (TypeError, ValueError):
            continue
        if 0 < diff < best_diff:
            best, best_diff = direct, diff
    return best


def _finalize_level2(draft: _Draft, pool: Pool) -> Association | None:
    sciences = draft.roles("science")
    if not sciences:
        return None
    first_row = draft.rows[0][0]
    members = [Member(_renamed(row["filename"], "rateints" if uses_integrations(row) else "rate"), role,
                      {"exposerr": _exposerr(row)})
               for row, role in draft.rows if role != "direct_image"]
    if draft.rule.name == "Asn_Lv2WFSSNRC":
        directs = draft.roles("direct_image")
        if not directs:
            return None
        direct = _closest_direct(sciences[0], directs)
        # the Level-3 root of the direct image, named as the official rule does: with no
        # subarray part (the image3 product of a subarray direct image has one)
        program, _, target, instrument, _ = draft.key
        root = _level3_root(program, draft.candidate.id, target, instrument,
                            (get(direct, "filter", "band"), get(direct, "pupil", "grating")))
        members += [Member(f"{root}_i2d.fits", "direct_image"), Member(f"{root}_cat.ecsv", "sourcecat"),
                    Member(f"{root}_segm.fits", "segmap")]
    # Level 2 is valid for observation candidates, or background candidates with a background member
    if not (draft.candidate.type == "observation"
            or (draft.candidate.type == "background" and draft.roles("background"))):
        return None
    science_name = next(m.expname for m in members if m.exptype == "science")
    product = Product(_KNOWN_SUFFIX.sub("", science_name.split(".")[0]), members)
    return Association(
        products=[product], asn_type=draft.rule.asn_type, asn_rule=_rule_name(draft),
        asn_id=draft.candidate.id, asn_pool=pool.name, program=f"{first_row['program']:0>5}",
        target=first_row.get("targetid", "none"), degraded_status=_degraded_status(draft),
        extra={"code_version": f"webbcal {__version__}"})


def _finalize_level3(draft: _Draft, pool: Pool) -> Association | None:
    if not draft.roles("science"):
        return None
    if draft.candidate.type in MULTI_OBS_CANDIDATE_TYPES and len(draft.obs_nums) < 2:
        return None  # mosaic/group/background candidates must span observations
    parts = level3_name_parts(draft.key)
    name = _level3_root(parts["program"], draft.candidate.id, parts["target"], parts["instrument"],
                        parts["opt"], parts["slit"], parts["subarray"])
    members = []
    for row, role in draft.rows:
        if role == "background":
            suffix = "x1d"
        else:
            suffix = "cal" if row.get("exp_type") in LEVEL2B_EXP_TYPES else "rate"
            suffix += "ints" if uses_integrations(row) else ""
        members.append(Member(_renamed(row["filename"], suffix), role,
                              {"exposerr": _exposerr(row), "asn_candidate": _candidate_value(row, draft.candidate)}))
    product = Product(name, members)
    return Association(
        products=[product], asn_type=draft.rule.asn_type, asn_rule=_rule_name(draft),
        asn_id=draft.candidate.id, asn_pool=pool.name, program=f"{parts['program']:0>5}",
        target=f"t{parts['target']:0>3}", degraded_status=_degraded_status(draft),
        extra={"code_version": f"webbcal {__version__}"}, key_order=LEVEL3_KEY_ORDER)


def _membership(asn: Association) -> frozenset:
    return frozenset((m.expname, m.exptype) for m in asn.products[0].members)


def _prune_and_sequence(asns: list[Association]) -> list[tuple[int, Association]]:
    """Official ``prune`` + ``resequence``.

    1. Of associations with identical membership keep the one of the highest candidate id
       (o > c > a; the official pops a sorted list from its end, hence the reversed order).
    2. Of associations sharing a product name, drop the one with fewer members — the
       official "subset" test only compares member counts, so this holds even for
       disjoint member lists; equal counts keep both.
    3. Number per (candidate, type) in the resulting order.
    """
    ordered = sorted(asns, key=lambda a: a.asn_id)  # stable: creation order within a candidate
    kept, seen = [], set()
    for asn in reversed(ordered):
        membership = _membership(asn)
        if membership not in seen:
            seen.add(membership)
            kept.append(asn)
    names = [a.products[0].name for a in kept]
    if len(set(names)) != len(names):
        kept = sorted(kept, key=lambda a: a.asn_id)
        dropped: list[Association] = []
        for name in sorted({n for n in names if names.count(n) > 1}):
            group = [a for a in kept if a.products[0].name == name]
            to_keep = list(group)
            for asn in group:
                if any(asn is d for d in dropped):
                    continue
                to_prune = []
                for entrant in to_keep:
                    if entrant is asn:
                        continue
                    relation = _official_relation(asn, entrant)
                    if relation == "subset":
                        if len(entrant.products[0].members) > len(asn.products[0].members):
                            asn, entrant = entrant, asn
                        to_prune.append(entrant)
                    elif relation == "same":
                        to_prune.append(entrant)
                dropped += to_prune
                to_keep = [a for a in to_keep if not any(a is p for p in to_prune)]
        kept = [a for a in kept if not any(a is d for d in dropped)]
    counters: dict[tuple[str, str], int] = {}
    numbered = []
    for asn in kept:
        counters[(asn.asn_id, asn.asn_type)] = counters.get((asn.asn_id, asn.asn_type), 0) + 1
        numbered.append((counters[(asn.asn_id, asn.asn_type)], asn))
    return numbered


def _official_relation(left: Association, right: Association) -> str:
    """``diff.compare_product_membership`` reduced to its verdict: "same", "subset" (member
    counts differ and no shared file changes role) or "different"."""
    lhs = {m.expname: m.exptype for m in left.products[0].members}
    rhs = {m.expname: m.exptype for m in right.products[0].members}
    if lhs == rhs:
        return "same"
    role_changed = any(rhs[name] != role for name, role in lhs.items() if name in rhs)
    if len(lhs) != len(rhs) and not role_changed:
        return "subset"
    return "different"


def write_associations(pool_or_dir, outdir: str | os.PathLike, version_id: str | None = None) -> list[Path]:
    """Generate and write every association into ``outdir``; returns the written paths."""
    from webbcal.asn.io import write_association

    outdir = Path(outdir)
    return [write_association(asn, outdir / name)
            for name, asn in generate_associations(pool_or_dir, version_id=version_id)]
