"""Lazy, memory-mapped access to FITS image data, including pseudo-unsigned integers.

astropy applies BZERO by copying the whole array (``hdu.data`` of a uint16 uncal is a
full in-memory copy), which defeats memory mapping. Here the raw big-endian bytes are
memory-mapped directly (offsets from ``HDUList.fileinfo``) and:

* unscaled data (float32 SCI, uint8 GROUPDQ, ...) is a copy-on-write ``numpy.memmap``
  (big-endian, as stored; in-place changes never reach the file);
* pseudo-unsigned data (BSCALE=1 and BZERO=2**(bits-1): uint16 raw SCI, uint32 DQ) is a
  ``ScaledMemmap``: the offset is a flip of the sign bit, applied only to the section
  that is indexed, so touching one integration of a 4 GB uncal reads one integration;
* any other BSCALE/BZERO is converted eagerly (rare in DMS files).

``read_section(path, extname, slices)`` returns one block (e.g. a row range) as a plain
in-memory array without reading the rest of the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from numpy.lib.mixins import NDArrayOperatorsMixin

from webbcal.errors import WebbcalError

_BITPIX_DTYPES = {8: np.dtype("u1"), 16: np.dtype(">i2"), 32: np.dtype(">i4"), 64: np.dtype(">i8"),
                  -32: np.dtype(">f4"), -64: np.dtype(">f8")}


@dataclass(frozen=True)
class HDUSpan:
    """Where one HDU's data lives in the file, and how to interpret it."""

    index: int
    name: str
    ver: int
    header: fits.Header
    is_table: bool
    shape: tuple[int, ...]  # numpy order; () when there is no data
    raw_dtype: np.dtype | None
    bzero: float
    bscale: float
    offset: int
    nbytes: int


def image_span(hdu, index: int, offset: int) -> HDUSpan:
    """Describe ``hdu`` (header already read) without touching its data."""
    header = hdu.header
    name = "PRIMARY" if index == 0 else str(header.get("EXTNAME", "")).strip().upper()
    ver = int(header.get("EXTVER", 1))
    naxis = int(header.get("NAXIS", 0))
    if naxis < 0 or naxis > 999:
        raise ValueError(f"NAXIS={naxis}")
    dims = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    if any(d < 0 for d in dims):
        raise ValueError(f"negative axis length in {name or f'HDU {index}'}")
    is_table = isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))
    if is_table:
        nbytes = (dims[0] * dims[1] if naxis == 2 else 0) + int(header.get("PCOUNT", 0))
        return HDUSpan(index, name, ver, header, True, tuple(dims[::-1]), None, 0.0, 1.0, offset, nbytes)
    bitpix = int(header["BITPIX"])
    if bitpix not in _BITPIX_DTYPES:
        raise ValueError(f"BITPIX={bitpix}")
    raw = _BITPIX_DTYPES[bitpix]
    shape = tuple(dims[::-1]) if naxis else ()
    nbytes = int(np.prod(shape, dtype=np.int64)) * raw.itemsize if shape else 0
    bzero = float(header.get("BZERO", 0) or 0)
    bscale = float(header.get("BSCALE", 1) or 1)
    return HDUSpan(index, name, ver, header, False, shape, raw, bzero, bscale, offset, nbytes)


def pseudo_unsigned_dtype(span: HDUSpan) -> np.dtype | None:
    """The integer dtype whose sign-bit flip BZERO encodes, or None if it is not one."""
    if span.bscale != 1.0 or span.raw_dtype is None or span.raw_dtype.kind not in "iu":
        return None
    bits = span.raw_dtype.itemsize * 8
    if span.raw_dtype.kind == "i" and span.bzero == 2.0 ** (bits - 1):
        return np.dtype(f"u{span.raw_dtype.itemsize}")
    if span.raw_dtype.kind == "u" and span.bzero == -128.0:
        return np.dtype("i1")
    return None


def _flip(raw: np.ndarray, target: np.dtype) -> np.ndarray:
    """Raw FITS integers -> ``target`` (a new native array), flipping the sign bit (== +BZERO)."""
    size = raw.dtype.itemsize
    bits = raw.astype(f"={raw.dtype.kind}{size}" if size > 1 else raw.dtype).view(f"u{size}")
    bits ^= np.array(1 << (8 * size - 1)).astype(f"u{size}")
    return bits.view(target)


class ScaledMemmap(NDArrayOperatorsMixin):
    """A pseudo-unsigned array on a memory map: converts only what is indexed.

    Behaves as an ndarray of ``dtype`` for shape/ndim/len, slicing (returns ndarrays),
    item assignment (copy-on-write), ``np.asarray``, ``astype`` and arithmetic; any other
    ndarray attribute (``max()``, ``T``, ``reshape`` ...) is taken from the converted whole
    array. It is not an ``np.ndarray`` subclass: call ``np.asarray`` where a real ndarray
    is required (isinstance checks, C extensions).
    """

    def __init__(self, raw: np.ndarray, dtype: np.dtype):
        self._raw = raw
        self.dtype = np.dtype(dtype)
        self.shape = raw.shape

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        return _flip(np.asarray(self._raw[index]), self.dtype)

    def __setitem__(self, index, value) -> None:
        """Copy-on-write like the plain memmaps: changes stay in memory, the file is untouched."""
        size = self.dtype.itemsize
        bits = np.asarray(value).astype(self.dtype).view(f"u{size}")
        self._raw[index] = (bits ^ np.array(1 << (8 * size - 1)).astype(f"u{size}")).view(self._raw.dtype.newbyteorder("="))

    def __array__(self, dtype=None, copy=None):
        out = self.astype(dtype) if dtype is not None else self[...]
        return out

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        """Convert block by block so no full-size intermediate of the raw type is made."""
        out = np.empty(self.shape, dtype=dtype)
        if self.ndim == 0 or self.size == 0:
            out[...] = self[...]
            return out
        step = max(1, (64 << 20) // max(1, self.nbytes // max(1, self.shape[0])))
        offset = float(1 << (8 * self.dtype.itemsize - 1)) * (1 if self.dtype.kind == "u" else -1)
        # Float targets wide enough to hold every value exactly: convert the raw integers and
        # add BZERO in place (3x faster than going through the unsigned intermediate).
        exact = out.dtype.kind == "f" and np.finfo(out.dtype).nmant >= 8 * self.dtype.itemsize
        for start in range(0, self.shape[0], step):
            block = slice(start, start + step)
            if exact:
                out[block] = self._raw[block]
                out[block] += offset
            else:
                out[block] = self[block]
        return out

    def copy(self) -> np.ndarray:
        return self[...]

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(np.asarray(x) if isinstance(x, ScaledMemmap) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getattr__(self, name):
        # Only reached for attributes not defined here: behave like the converted array.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self[...], name)

    def __repr__(self) -> str:
        return f"ScaledMemmap(shape={self.shape}, dtype={self.dtype})"


def map_file(path) -> np.memmap:
    """One copy-on-write byte map of the whole file, shared by all its arrays.

    A step may modify an array in place: only touched pages are copied (privately) and
    the file itself never changes. One map per file, not per HDU: every mmap holds a file
    descriptor, and a WFSS cal with 500 slits x 7 planes would exhaust a 1024 limit.
    """
    return np.memmap(path, dtype=np.uint8, mode="c")


def read_image(path, span: HDUSpan, lazy: bool = True, file_map: np.memmap | None = None):
    """The data of an image HDU: memmap / ScaledMemmap when ``lazy``, else an in-memory copy.

    ``file_map`` (from ``map_file``) lets all HDUs of a file share one memory map.
    """
    if not span.shape:
        return None
    target = pseudo_unsigned_dtype(span)
    raw = _map_raw(path, span, file_map)
    if target is not None:
        view = ScaledMemmap(raw, target)
        return view if lazy else view[...]
    if span.bzero != 0.0 or span.bscale != 1.0:
        scaled = np.asarray(raw, dtype=np.float64) * span.bscale + span.bzero
        return scaled.astype(np.float32 if span.raw_dtype.itemsize <= 2 else np.float64)
    if lazy:
        return raw
    return np.array(raw, dtype=raw.dtype.newbyteorder("="))


def _map_raw(path, span: HDUSpan, file_map: np.memmap | None = None) -> np.ndarray:
    if 0 in span.shape:
        return np.zeros(span.shape, dtype=span.raw_dtype)
    if file_map is None:
        file_map = map_file(path)
    # FITS data starts on 2880-byte blocks, so every view is aligned for its dtype.
    return file_map[span.offset:span.offset + span.nbytes].view(span.raw_dtype).reshape(span.shape)


def find_span(path, extname: str, extver: int = 1) -> HDUSpan:
    """Locate one image extension by reading headers only."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(path, "rb") as handle, fits.open(handle, memmap=False) as hdul:
                for index, hdu in enumerate(hdul):
                    name = "PRIMARY" if index == 0 else str(hdu.header.get("EXTNAME", "")).upper()
                    if name == extname.upper() and int(hdu.header.get("EXTVER", 1)) == extver:
                        info = hdul.fileinfo(index)
                        span = image_span(hdu, index, info["datLoc"])
                        if info["datLoc"] + span.nbytes > os.path.getsize(path):
                            raise WebbcalError(path, f"truncated: extension {extname} runs past the end of the file")
                        return span
    except WebbcalError:
        raise
    except FileNotFoundError:
        raise WebbcalError(path, "no such file") from None
    except Exception as exc:
        raise WebbcalError(path, f"malformed or truncated FITS: {type(exc).__name__}: {exc}") from None
    raise WebbcalError(path, f"no extension {extname},{extver}")


def read_section(path, extname: str, slices=Ellipsis, extver: int = 1) -> np.ndarray:
    """One block of an image extension (e.g. ``np.s_[0, :, 100:200]``) as an in-memory array.

    Only the pages holding the block are read; BZERO/BSCALE are applied to the block.
    """
    span = find_span(path, extname, extver)
    if not span.shape or span.is_table:
        raise WebbcalError(path, f"extension {extname} holds no image")
    data = read_image(path, span, lazy=True)
    block = data[slices]
    return np.array(block, dtype=block.dtype.newbyteorder("="))
