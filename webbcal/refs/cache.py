"""The reference cache: a directory of reference files plus ``manifest.json``.

The manifest lists, per file, its reftype, the selector values it serves, USEAFTER and
sha256 (see ``selection.Entry``). Concurrency: every change (``add``, ``index_directory``)
holds an exclusive ``fcntl`` lock on ``.manifest.lock``, copies the file in first and then
replaces the manifest atomically (temp file + ``os.replace``), so a reader that takes no
lock still sees either the old or the new complete manifest, and every file a manifest
names is already complete.

A directory without a manifest (e.g. a CRDS cache ``$CRDS_PATH/references/jwst/nircam``)
is indexed in memory from the files' own headers and never written to unless ``add`` is
called on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from webbcal.errors import WebbcalError
from webbcal.io.atomic import TEMP_PREFIX, atomic_path, atomic_write_text
from webbcal.refs.formats import REFTYPES, read_reference_keywords
from webbcal.refs.keywords import PATTERN_KEYWORDS
from webbcal.refs.selection import SELECTORS, Entry, choose

log = logging.getLogger("webbcal.refs.cache")

MANIFEST = "manifest.json"
LOCK = ".manifest.lock"
MANIFEST_FORMAT = "webbcal-reference-manifest"
MANIFEST_VERSION = 1
REFERENCE_SUFFIXES = (".fits", ".asdf")
CRDS_SUBDIR = Path("references") / "jwst" / "nircam"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_for_file(path: str | os.PathLike, reftype: str | None = None, with_sha: bool = True) -> Entry:
    """Index one reference file from its own metadata (REFTYPE, selectors, USEAFTER)."""
    path = Path(path)
    keywords = read_reference_keywords(path)
    found = str(keywords.get("REFTYPE") or "").strip().lower()
    if not found:
        raise WebbcalError(path, "has no REFTYPE keyword: not a reference file")
    if found not in REFTYPES:
        raise WebbcalError(path, f"REFTYPE {found.upper()} is not a NIRCam type webbcal uses")
    if reftype is not None and reftype.lower() != found:
        raise WebbcalError(path, f"is a {found} reference, not {reftype.lower()}")
    useafter = keywords.get("USEAFTER")
    if not useafter:
        raise WebbcalError(path, "has no USEAFTER keyword")
    selectors = {}
    for key in SELECTORS[found]:
        pattern = keywords.get(PATTERN_KEYWORDS.get(key, ""), None)
        value = pattern if pattern not in (None, "") else keywords.get(key)
        if value not in (None, ""):
            selectors[key] = value if isinstance(value, (int, float)) else str(value).strip()
    return Entry(file=path.name, reftype=found, selectors=selectors, useafter=str(useafter).strip(),
                 sha256=sha256_of(path) if with_sha else "")


def scan_directory(directory: str | os.PathLike, with_sha: bool = True) -> list[Entry]:
    """Entries for every readable reference file directly in ``directory`` (others skipped)."""
    entries = []
    for path in sorted(Path(directory).iterdir()):
        if path.suffix.lower() not in REFERENCE_SUFFIXES or path.name.startswith(TEMP_PREFIX):
            continue
        try:
            entries.append(entry_for_file(path, with_sha=with_sha))
        except WebbcalError as exc:
            log.warning("not indexed: %s", exc)
    return entries


@contextlib.contextmanager
def manifest_lock(root: Path):
    """Exclusive lock serialising every writer of ``root``'s manifest (all processes)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_manifest(root: Path, entries: list[Entry]) -> Path:
    ordered = sorted(entries, key=lambda e: (e.reftype, e.file))
    document = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                "entries": [e.to_json() for e in ordered]}
    return atomic_write_text(root / MANIFEST, json.dumps(document, indent=1, sort_keys=True) + "\n")


def read_manifest(path: Path) -> list[Entry]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WebbcalError(path, f"manifest is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise WebbcalError(path, "manifest has no 'entries' list")
    try:
        return [Entry.from_json(item) for item in document["entries"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise WebbcalError(path, f"manifest entry malformed: {exc!r}") from None


def index_directory(directory: str | os.PathLike) -> list[Entry]:
    """Build ``manifest.json`` in ``directory`` from the headers of the files there."""
    root = Path(directory)
    if not root.is_dir():
        raise WebbcalError(root, "no such directory")
    with manifest_lock(root):
        entries = scan_directory(root)
        write_manifest(root, entries)
    return entries


class RefCache:
    """A reference-file cache directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._indexed: list[Entry] | None = None  # in-memory index when there is no manifest

    def __repr__(self) -> str:
        return f"RefCache({str(self.root)!r})"

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None) -> "RefCache":
        """The cache at ``path``, else ``$WEBBCAL_REFS``, else ``$CRDS_PATH``'s NIRCam files."""
        if path:
            return cls(path)
        if os.environ.get("WEBBCAL_REFS"):
            return cls(os.environ["WEBBCAL_REFS"])
        crds = os.environ.get("CRDS_PATH")
        if crds:
            nircam = Path(crds) / CRDS_SUBDIR
            if nircam.is_dir():
                return cls(nircam)
            raise WebbcalError(nircam, "CRDS_PATH is set but holds no references/jwst/nircam directory")
        raise WebbcalError(None, "no reference cache: give one explicitly, or set WEBBCAL_REFS "
                                 "(a webbcal cache) or CRDS_PATH (a CRDS cache)")

    # -- reading ------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Current entries (the manifest is re-read each call: other jobs may add files)."""
        if self.manifest_path.is_file():
            return read_manifest(self.manifest_path)
        if not self.root.is_dir():
            raise WebbcalError(self.root, "reference cache directory does not exist")
        if self._indexed is None:
            self._indexed = scan_directory(self.root, with_sha=False)
            if self._indexed:
                log.info("indexed %d reference files in %s (no %s)", len(self._indexed), self.root, MANIFEST)
        return list(self._indexed)

    def path_of(self, entry: Entry) -> Path:
        path = self.root / entry.file
        if not path.is_file():
            where = self.manifest_path if self.manifest_path.is_file() else self.root
            raise WebbcalError(where, f"names {entry.file} ({entry.reftype}), which is missing from {self.root}")
        return path

    def select(self, reftype: str, header) -> Path:
        """Best reference of ``reftype`` for an exposure header (ReferenceNotFound if none)."""
        where = self.manifest_path if self.manifest_path.is_file() else self.root
        return self.path_of(choose(self.entries(), reftype, header, where=where))

    def verify(self) -> list[str]:
        """Problems with the cache: missing files, checksum mismatches (empty = healthy)."""
        problems = []
        for entry in self.entries():
            path = self.root / entry.file
            if not path.is_file():
                problems.append(f"{entry.file}: missing")
            elif entry.sha256 and sha256_of(path) != entry.sha256:
                problems.append(f"{entry.file}: sha256 differs from the manifest")
        return problems

    # -- writing ------------------------------------------------------------------------

    def add(self, path: str | os.PathLike, reftype: str | None = None) -> Entry:
        """Copy a reference file into the cache and record it (replacing a same-named one)."""
        source = Path(path)
        entry = entry_for_file(source, reftype)
        destination = self.root / source.name
        with manifest_lock(self.root):
            current = self.entries()
            in_place = destination.exists() and destination.resolve() == source.resolve()
            if not in_place:
                with atomic_path(destination) as tmp:
                    shutil.copyfile(source, tmp)
                    if sha256_of(tmp) != entry.sha256:
                        raise WebbcalError(source, "changed while being copied into the cache")
            replaced = [e for e in current if e.file == entry.file]
            if replaced and replaced[0].sha256 != entry.sha256:
                log.warning("replacing %s in %s with different content", entry.file, self.root)
            write_manifest(self.root, [e for e in current if e.file != entry.file] + [entry])
            self._indexed = None
        return entry
