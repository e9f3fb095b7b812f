"""``webbcal asn``: generate associations from exposures or a pool, and show one.

``webbcal asn generate DIR|POOL.csv -o OUTDIR [--version-id ID]`` does by hand what the
workflow's checkpoint does: a directory is read as Level-1b exposures (primary headers
only), any other path as an official ``|``-separated pool table.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def asn():
    """Generate and inspect JWST association files."""


@asn.command("generate")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--outdir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write the *_asn.json files into (created if needed).")
@click.option("--version-id", default=None,
              help="DMS version tag put in file names, e.g. 20251216t202003 [default: none].")
def generate(source, outdir, version_id):
    """Write the image2, image3, spec2 and spec3 associations of SOURCE (a directory of
    *_uncal.fits exposures, or a *_pool.csv pool)."""
    from webbcal.asn import write_associations

    paths = write_associations(source, outdir, version_id=version_id)
    for path in paths:
        click.echo(str(path))
    click.echo(f"{len(paths)} association(s) written to {outdir}", err=True)


@asn.command("show")
@click.argument("asn_file", type=click.Path(path_type=Path))
@click.option("--check-members", is_flag=True, help="Also require every member file to exist.")
def show(asn_file, check_members):
    """Validate ASN_FILE and print its type, products and members."""
    from webbcal.asn import read_association

    association = read_association(asn_file, check_members=check_members)
    click.echo(f"{asn_file}")
    click.echo(f"  type {association.asn_type}  rule {association.asn_rule}  candidate {association.asn_id}"
               f"  program {association.program}  target {association.target}  pool {association.asn_pool}")
    for product in association.products:
        click.echo(f"  product {product.name}  ({len(product.members)} members)")
        for member in product.members:
            click.echo(f"    {member.exptype:<18} {member.expname}")
    for problem in association.problems():
        click.echo(f"  warning: {problem}", err=True)
