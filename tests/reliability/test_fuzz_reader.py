"""Fuzzing the FITS reader (hypothesis): random byte corruption of a small product and of a
small reference file.

Whatever the damage (bytes flipped anywhere, printable garbage in the headers, the file
cut short), reading it through ``read_product`` (data touched too), ``load_reference``
and ``webbcal info`` either succeeds or fails with a ``WebbcalError`` that names the file
in one line (the CLI: one ``webbcal: error: <file>: ...`` line, no traceback); never any
other exception. ``tests/io/test_io_bad_input.py`` has a seeded loop over an uncal; this
adds shrinking, a calibrated product with its ASDF extension, and a reference with DQ_DEF.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from webbcal.errors import WebbcalError
from webbcal.io.product import read_product

from .helpers import run_in_process

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

HEADER_GARBAGE = np.frombuffer(b"0123456789 =/'-.ABTEFXNS", np.uint8)

# One damage: ("cut", fraction of the file kept), ("flip", [(where, byte)]) anywhere,
# ("garble", [(where, printable byte)]) inside the headers, where the structure is, or
# ("asdf", [(where, byte)]) inside the ASDF extension's YAML and blocks (anywhere if none).
positions = st.floats(0.0, 1.0, exclude_max=True)
damages = st.one_of(
    st.tuples(st.just("cut"), positions),
    st.tuples(st.just("flip"), st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("garble"), st.lists(st.tuples(positions, st.sampled_from(list(HEADER_GARBAGE))),
                                          min_size=1, max_size=12)),
    st.tuples(st.just("asdf"), st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=4)),
)


def regions(path: Path) -> dict[str, np.ndarray]:
    """Byte offsets of every header, and of the ASDF extension's data (whole file if none)."""
    with fits.open(path) as hdul:
        info = [(hdu.name, hdul.fileinfo(i)) for i, hdu in enumerate(hdul)]
    headers = np.concatenate([np.arange(f["hdrLoc"], f["datLoc"]) for _, f in info])
    asdf = [np.arange(f["datLoc"], f["datLoc"] + f["datSpan"]) for name, f in info if name == "ASDF"]
    return {"garble": headers, "asdf": asdf[0] if asdf else np.arange(path.stat().st_size),
            "flip": np.arange(path.stat().st_size)}


def damaged(raw: bytes, where_to: dict[str, np.ndarray], damage) -> bytes:
    kind, what = damage
    if kind == "cut":
        return raw[: int(what * len(raw))]
    data = bytearray(raw)
    offsets = where_to[kind]
    for where, byte in what:
        data[int(offsets[int(where * len(offsets))])] = int(byte)
    return bytes(data)


class Fuzzer:
    """Writes each damaged copy to a new file (a new inode: earlier memory maps stay valid)."""

    def __init__(self, source: Path, workdir: Path):
        self.raw = source.read_bytes()
        self.regions = regions(source)
        self.suffix = source.name.split("_", 1)[-1] if "_" in source.name else source.name
        self.workdir = workdir
        self.counter = itertools.count()

    def write(self, damage) -> Path:
        path = self.workdir / f"fuzz{next(self.counter):04d}_{self.suffix}"
        path.write_bytes(damaged(self.raw, self.regions, damage))
        return path


def assert_clean_error(exc: WebbcalError, path: Path):
    assert exc.path == str(path), f"the error names {exc.path!r}, not the damaged file"
    assert "\n" not in str(exc)


def read_everything(path: Path):
    """read_product, then every array and table touched: lazy data must not fail later."""
    product = read_product(path)
    for array in product.arrays.values():
        np.asarray(array).sum()
    for table in product.tables.values():
        np.asarray(table).tobytes()
    return product


def assert_info_clean(path: Path) -> str:
    """``webbcal info`` describes the file or prints one error line naming it."""
    from webbcal.cli import main

    outcome = run_in_process(main, ["info", str(path)])
    assert "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    if outcome.code == 0:
        return "info: described"
    lines = outcome.error_lines()
    assert len(lines) == 1, "expected one error line, got:\n" + "\n".join(lines[-10:])
    assert lines[0].startswith("webbcal: error: ") and str(path) in lines[0], lines[0]
    return "info: error"


@pytest.fixture(scope="module")
def product_fuzzer(tiny_products, tmp_path_factory):
    """A calibrated rate (SCI, ERR, DQ, VAR_* and the ASDF extension)."""
    return Fuzzer(tiny_products / "x_rate.fits", tmp_path_factory.mktemp("fuzz_product"))


@pytest.fixture(scope="module")
def reference_fuzzer(tiny_program, tmp_path_factory):
    """A MASK reference (DQ with its DQ_DEF table) for the exposure's subarray: the
    simulated program's full-frame mask cut to it, small enough to damage 60 times."""
    from webbcal.refs.formats import write_reference

    program, uncal = tiny_program
    exposure = fits.getheader(uncal)
    [mask] = sorted((program / "refs").glob("webbcal_*_mask.fits"))
    corner = {k: exposure[k] for k in ("SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")}
    x0, y0 = corner["SUBSTRT1"] - 1, corner["SUBSTRT2"] - 1
    with fits.open(mask) as hdul:
        dq = np.array(hdul["DQ"].data[y0:y0 + corner["SUBSIZE2"], x0:x0 + corner["SUBSIZE1"]], np.uint32)
        meta = {k: hdul[0].header[k] for k in ("USEAFTER", "DETECTOR")}
    dq[::7, ::5] |= np.uint32(1 | 1024)  # flags in every part of the array
    small = write_reference(tmp_path_factory.mktemp("small_ref") / "webbcal_small_mask.fits", "mask",
                            {**meta, **corner}, arrays={"DQ": dq})
    fuzzer = Fuzzer(small, tmp_path_factory.mktemp("fuzz_reference"))
    fuzzer.exposure = exposure
    fuzzer.shape = dq.shape
    return fuzzer


@given(damage=damages)
@FUZZ
def test_damaged_product_reads_or_fails_cleanly(product_fuzzer, damage):
    path = product_fuzzer.write(damage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's own warnings about odd cards are fine
        try:
            read_everything(path)
            event("read_product: read")
        except WebbcalError as exc:
            assert_clean_error(exc, path)
            event("read_product: error")
    event(assert_info_clean(path))


@given(damage=damages)
@FUZZ
def test_damaged_reference_loads_or_fails_cleanly(reference_fuzzer, damage):
    from webbcal.refs.load import load_reference

    path = reference_fuzzer.write(damage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for read in (read_everything,
                     lambda p: load_reference(p, "mask", reference_fuzzer.exposure, sci_shape=reference_fuzzer.shape)):
            try:
                read(path)
            except WebbcalError as exc:
                assert_clean_error(exc, path)
    event(assert_info_clean(path))


def test_the_fuzzed_files_are_valid_before_damage(product_fuzzer, reference_fuzzer):
    """The damage is what fails: undamaged copies read, load and describe without error."""
    from webbcal.refs.load import load_reference

    product = read_everything(product_fuzzer.write(("flip", [])))
    assert "SCI" in product.arrays and product.tree
    reference = load_reference(reference_fuzzer.write(("flip", [])), "mask", reference_fuzzer.exposure,
                               sci_shape=reference_fuzzer.shape)
    assert reference.arrays["DQ"].shape == reference_fuzzer.shape and "DQ_DEF" in reference.tables
    assert (reference.arrays["DQ"][::7, ::5] & 1024).all()
    assert assert_info_clean(product_fuzzer.write(("flip", []))) == "info: described"
