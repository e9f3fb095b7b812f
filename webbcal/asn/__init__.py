"""JWST associations: the typed model, JSON reader/writer, pools and the generator.

The small API the workflow uses::

    from webbcal.asn import read_association, generate_associations
    asn = read_association("jw01243-o001_image3_00001_asn.json")
    asn.asn_type, asn.products[0].name, asn.products[0].members_of_type("science")
    for file_name, asn in generate_associations("uncal_dir/", version_id=None): ...
    member_path("asn/x_asn.json", member)  # where a member file is: next to its association
"""

from webbcal.asn.generate import generate_associations, write_associations
from webbcal.asn.io import member_path, read_association, write_association
from webbcal.asn.model import Association, Member, Product
from webbcal.asn.pool import Pool, pool_from_exposures, read_pool

__all__ = ["Association", "Member", "Pool", "Product", "generate_associations", "member_path",
           "pool_from_exposures", "read_association", "read_pool", "write_association", "write_associations"]
