"""Atomic file writes: a product either exists complete under its name, or not at all.

Write into a temporary file in the destination directory (same filesystem), fsync it,
then ``os.replace`` it onto the final name. On any exception the temporary file is
removed and nothing appears under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".webbcal-tmp-"
# Errors that are about where a file is written, whichever file the OS call named
# (shutil.copyfile names its source when the destination's disk is full).
_DESTINATION_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success move it onto ``path``.

    >>> with atomic_path("out.fits") as tmp:
    ...     hdulist.writeto(tmp)
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=final.suffix, dir=final.parent)
    except OSError as exc:
        raise _naming_product(exc, final, None)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise _naming_product(exc, final, tmp)
        raise


def _naming_product(exc: OSError, final: Path, tmp: Path | None) -> OSError:
    """Make a write error (a full disk, a read-only directory) name the product, not the
    temporary file that no longer exists, or nothing (astropy reports a full disk as a
    bare ``OSError("Not enough space on disk ...")``)."""
    named_elsewhere = exc.filename is not None and (tmp is None or os.fspath(exc.filename) != os.fspath(tmp))
    if named_elsewhere and exc.errno not in _DESTINATION_ERRORS:  # e.g. an unreadable source
        return exc
    if exc.errno is not None:
        exc.filename, exc.filename2 = os.fspath(final), None
        return exc
    return OSError(None, str(exc), os.fspath(final))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
