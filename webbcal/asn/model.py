"""A small typed view of a JWST association: Association → Product → Member.

The JSON layout is the official one (``jwst/associations/lib/asn_schema_jw_level*.json``):
only ``products``, ``products[].members`` and each member's ``expname`` and ``exptype``
are required; every other key is informational and is kept verbatim in ``extra`` so that
reading and writing an association never loses information.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEGRADED_STATUS_OK = "No known degraded exposures in association."

# Association types whose products are Level-2 (one science exposure per product).
LEVEL2_TYPES = frozenset({"image2", "spec2", "tso-image2", "tso-spec2", "nrslamp-spec2", "wfs-image2"})

# Top-level keys in the order the official generator writes them; anything else follows.
_HEADER_KEYS = ("asn_type", "asn_rule", "version_id", "code_version", "degraded_status",
                "program", "constraints", "asn_id", "asn_pool", "target")
LEVEL3_KEY_ORDER = ("asn_type", "asn_rule", "version_id", "code_version", "degraded_status",
                    "program", "constraints", "asn_id", "target", "asn_pool")


@dataclass
class Member:
    """One file of a product: ``expname`` (relative to the association's directory)
    and its role ``exptype`` (science, background, direct_image, sourcecat, segmap, ...)."""

    expname: str
    exptype: str
    extra: dict = field(default_factory=dict)  # exposerr, asn_candidate, group_id, ...

    def to_dict(self) -> dict:
        return {"expname": self.expname, "exptype": self.exptype, **self.extra}


@dataclass
class Product:
    """One output of the pipeline run on the association; ``name`` is its root file name."""

    name: str
    members: list[Member] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def members_of_type(self, exptype: str) -> list[Member]:
        exptype = exptype.lower()
        return [m for m in self.members if m.exptype.lower() == exptype]

    def to_dict(self) -> dict:
        return {"name": self.name, **self.extra, "members": [m.to_dict() for m in self.members]}


@dataclass
class Association:
    """An association: what a Level-2 or Level-3 pipeline run reads and produces."""

    products: list[Product]
    asn_type: str = "user_built"
    asn_rule: str = "DMS_Level3_Base"
    asn_id: str = "a3001"
    asn_pool: str = "none"
    program: str = "noprogram"
    target: str = "none"
    version_id: str | None = None
    degraded_status: str = DEGRADED_STATUS_OK
    extra: dict = field(default_factory=dict)  # code_version, constraints, anything else
    # Top-level key order to write (kept from the file read; Level 3 puts target before asn_pool)
    key_order: tuple = field(default=_HEADER_KEYS, compare=False, repr=False)

    @property
    def is_level2(self) -> bool:
        return self.asn_type.lower() in LEVEL2_TYPES

    def members_of_type(self, exptype: str) -> list[Member]:
        """Members of that type over all products (a Level-3 association has one product)."""
        return [m for p in self.products for m in p.members_of_type(exptype)]

    def problems(self) -> list[str]:
        """Structural problems, one short sentence each (empty when valid):
        a member listed twice in a product, a Level-2 product without exactly one science
        member, a Level-3 product without any science member, two products of one name."""
        found = []
        names = [p.name for p in self.products]
        for name in sorted({n for n in names if names.count(n) > 1}):
            found.append(f"product {name!r} appears {names.count(name)} times")
        for product in self.products:
            expnames = [m.expname for m in product.members]
            for dup in sorted({e for e in expnames if expnames.count(e) > 1}):
                found.append(f"member {dup!r} appears {expnames.count(dup)} times in product {product.name!r}")
            n_science = len(product.members_of_type("science"))
            if self.is_level2 and n_science != 1:
                found.append(f"Level-2 product {product.name!r} has {n_science} science members, needs exactly 1")
            elif n_science == 0:
                found.append(f"product {product.name!r} has no science member")
        return found

    def to_dict(self) -> dict:
        values = {"asn_type": self.asn_type, "asn_rule": self.asn_rule, "version_id": self.version_id,
                  "degraded_status": self.degraded_status, "program": self.program,
                  "asn_id": self.asn_id, "asn_pool": self.asn_pool, "target": self.target, **self.extra}
        ordered = {key: values.pop(key) for key in self.key_order if key in values}
        ordered.update(values)
        ordered["products"] = [p.to_dict() for p in self.products]
        return ordered
