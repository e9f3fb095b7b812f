"""``webbcal refs``: inspect the reference-file cache and what it selects for an exposure."""

from __future__ import annotations

import warnings
from pathlib import Path

import click
from astropy.io import fits

from webbcal.errors import ReferenceNotFound, WebbcalError
from webbcal.refs.cache import RefCache, index_directory
from webbcal.refs.formats import REFTYPES
from webbcal.refs.selection import SELECTORS

_CACHE_OPTION = click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path), default=None,
    help="Cache directory [default: $WEBBCAL_REFS, else $CRDS_PATH/references/jwst/nircam].")


def _open_cache(cache_dir: Path | None) -> RefCache:
    return RefCache.from_config(cache_dir)


def _exposure_header(path: Path) -> fits.Header:
    try:
        with warnings.catch_warnings():  # astropy warns before failing: the error says it all
            warnings.simplefilter("ignore")
            return fits.getheader(path, 0)
    except FileNotFoundError:
        raise WebbcalError(path, "no such file") from None
    except OSError as exc:
        raise WebbcalError(path, f"not a readable FITS file ({exc})") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def refs():
    """Inspect the reference-file cache and its selection."""


@refs.command("list")
@_CACHE_OPTION
@click.option("--type", "reftypes", multiple=True, type=click.Choice(REFTYPES), help="Only these types.")
def list_refs(cache_dir, reftypes):
    """One line per reference file: type, USEAFTER, file, selector values."""
    cache = _open_cache(cache_dir)
    entries = [e for e in cache.entries() if not reftypes or e.reftype in reftypes]
    for entry in sorted(entries, key=lambda e: (e.reftype, e.useafter, e.file)):
        missing = "" if (cache.root / entry.file).is_file() else "  [MISSING]"
        selectors = " ".join(f"{k}={v}" for k, v in entry.selectors.items())
        click.echo(f"{entry.reftype:<16} {entry.useafter:<20} {entry.file}  {selectors}{missing}")
    click.echo(f"{len(entries)} reference file(s) in {cache.root}", err=True)


@refs.command("select")
@click.argument("exposure", type=click.Path(path_type=Path))
@_CACHE_OPTION
@click.option("--type", "reftypes", multiple=True, type=click.Choice(REFTYPES),
              help="Reference type(s) to select [default: all; types without a match print N/A].")
def select_refs(exposure, cache_dir, reftypes):
    """Print the file the cache chooses for EXPOSURE, per reference type."""
    header = _exposure_header(exposure)
    cache = _open_cache(cache_dir)
    for reftype in reftypes or REFTYPES:
        try:
            chosen = cache.select(reftype, header)
        except ReferenceNotFound as exc:
            if reftypes:  # asked for explicitly: a missing match is an error
                raise
            click.echo(f"{reftype:<16} N/A  ({exc.problem})")
            continue
        keys = ", ".join(f"{k}={header.get(k)}" for k in SELECTORS[reftype] if header.get(k) is not None)
        click.echo(f"{reftype:<16} {chosen}  ({keys})")


@refs.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_CACHE_OPTION
def add_refs(files, cache_dir):
    """Copy reference FILES into the cache and index them from their headers."""
    cache = _open_cache(cache_dir)
    for path in files:
        entry = cache.add(path)
        click.echo(f"added {entry.reftype:<16} {entry.useafter:<20} {entry.file}")


@refs.command("index")
@click.argument("directory", type=click.Path(path_type=Path))
def index_refs(directory):
    """Write DIRECTORY/manifest.json from the headers of the reference files in it."""
    entries = index_directory(directory)
    click.echo(f"indexed {len(entries)} reference file(s) in {directory}")


@refs.command("verify")
@_CACHE_OPTION
def verify_refs(cache_dir):
    """Check that every file the manifest names exists and has its recorded sha256."""
    cache = _open_cache(cache_dir)
    problems = cache.verify()
    for problem in problems:
        click.echo(problem)
    if problems:
        raise WebbcalError(cache.manifest_path, f"{len(problems)} problem(s) found")
    click.echo(f"{len(cache.entries())} reference file(s) OK")
