"""Readers of a reference cache never see a torn file while another process replaces one.

``tests/refs/test_cache.py`` already races writers adding *new* files against readers;
this adds the other case: the same file name re-added (replaced) again and again while
several processes select and load it — a half-written file under the final name, or an
array mixing two versions, would show up as a non-uniform or wrongly shaped read.
"""

from __future__ import annotations

import multiprocessing as mp

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.refs import RefCache, load_reference, write_reference

from .helpers import temporaries

SHAPE = (256, 256)  # 256 KiB of float32: a write takes long enough to be caught mid-way
VERSIONS = 25
READERS = 3


def _header():
    from astropy.io import fits

    header = fits.Header()
    for key, value in {"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE",
                       "READPATT": "RAPID", "SUBARRAY": "GENERIC", "FILTER": "F200W", "PUPIL": "CLEAR",
                       "DATE-OBS": "2023-06-01", "TIME-OBS": "12:00:00.000", "SUBSTRT1": 1, "SUBSTRT2": 1,
                       "SUBSIZE1": SHAPE[1], "SUBSIZE2": SHAPE[0]}.items():
        header[key] = value
    return header


def _gain(directory, value):
    return write_reference(directory / "jwst_nircam_gain_shared.fits", "gain",
                           {"DETECTOR": "NRCA1", "USEAFTER": "2022-01-01T00:00:00", "SUBARRAY": "GENERIC"},
                           arrays={"SCI": np.full(SHAPE, value, "f4")})


def _replacer(root, staging, done):
    cache = RefCache(root)
    try:
        for version in range(1, VERSIONS + 1):
            cache.add(_gain(staging, float(version)))
    finally:
        done.set()


def _reader(root, done, queue):
    cache, header = RefCache(root), _header()
    seen, reads = set(), 0
    try:
        while not done.is_set() or reads < 20:
            reads += 1
            path = cache.select("gain", header)
            sci = np.array(load_reference(path, "gain", header).arrays["SCI"])
            values = np.unique(sci)
            if sci.shape != SHAPE or values.size != 1 or not 0 <= values[0] <= VERSIONS:
                queue.put(f"torn read: shape {sci.shape}, values {values[:5]}")
                return
            seen.add(float(values[0]))
        queue.put(f"ok {len(seen)} {reads}")
    except WebbcalError as exc:  # e.g. a truncated file under the final name
        queue.put(f"WebbcalError: {exc}")
    except Exception as exc:  # anything else is a failure too
        queue.put(f"{type(exc).__name__}: {exc}")


def test_replacing_a_reference_while_processes_read_it(tmp_path):
    root, staging = tmp_path / "cache", tmp_path / "staging"
    root.mkdir()
    staging.mkdir()
    RefCache(root).add(_gain(staging, 0.0))
    ctx = mp.get_context("fork")
    queue, done = ctx.Queue(), ctx.Event()
    readers = [ctx.Process(target=_reader, args=(root, done, queue)) for _ in range(READERS)]
    replacer = ctx.Process(target=_replacer, args=(root, staging, done))
    for proc in readers + [replacer]:
        proc.start()
    replacer.join(timeout=120)
    assert replacer.exitcode == 0
    results = [queue.get(timeout=60) for _ in readers]
    for proc in readers:
        proc.join(timeout=30)
    assert all(r.startswith("ok") for r in results), results
    # the reads really overlapped the replacements: readers saw several versions
    assert max(int(r.split()[1]) for r in results) > 1, results
    cache = RefCache(root)
    assert [e.file for e in cache.entries()] == ["jwst_nircam_gain_shared.fits"]
    assert cache.verify() == []
    assert float(np.asarray(load_reference(cache.select("gain", _header()), "gain", _header())
                            .arrays["SCI"])[0, 0]) == VERSIONS
    assert temporaries(root) == []
