"""RefCache: manifest, add, index, CRDS_PATH, missing files, concurrent writers and readers."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from webbcal.errors import ReferenceNotFound, WebbcalError
from webbcal.refs import RefCache, index_directory, load_reference, write_reference
from webbcal.refs.cache import CRDS_SUBDIR, MANIFEST, sha256_of

from .conftest import image_meta, science_header


def _gain(directory, name, detector="NRCA1", useafter="2022-01-01T00:00:00", value=2.0, shape=(16, 24)):
    return write_reference(directory / name, "gain", image_meta(DETECTOR=detector, USEAFTER=useafter),
                           arrays={"SCI": np.full(shape, value, "f4")})


def test_add_indexes_header_and_copies(tmp_path):
    src = _gain(tmp_path, "jwst_nircam_gain_0001.fits", detector="NRCB4")
    cache = RefCache(tmp_path / "cache")
    entry = cache.add(src)
    manifest = json.loads((cache.root / MANIFEST).read_text())
    [recorded] = manifest["entries"]
    assert recorded == {"file": "jwst_nircam_gain_0001.fits", "reftype": "gain", "useafter": "2022-01-01T00:00:00",
                        "selectors": {"INSTRUME": "NIRCAM", "DETECTOR": "NRCB4", "SUBARRAY": "GENERIC"},
                        "sha256": sha256_of(src)}
    assert entry.sha256 == sha256_of(cache.root / entry.file)
    assert cache.select("gain", science_header(DETECTOR="NRCB4")) == cache.root / "jwst_nircam_gain_0001.fits"
    # re-adding the same name replaces, never duplicates
    _gain(tmp_path, "jwst_nircam_gain_0001.fits", detector="NRCB4", value=3.0)
    cache.add(tmp_path / "jwst_nircam_gain_0001.fits")
    assert len(cache.entries()) == 1 and cache.verify() == []
    # not a reference file / wrong declared type
    with pytest.raises(WebbcalError, match="is a gain reference, not dark"):
        cache.add(src, reftype="dark")


def test_manifest_naming_a_missing_file(tmp_path):
    cache = RefCache(tmp_path / "cache")
    cache.add(_gain(tmp_path, "g.fits"))
    (cache.root / "g.fits").unlink()
    with pytest.raises(WebbcalError) as info:
        cache.select("gain", science_header())
    message = str(info.value)
    assert message.startswith(str(cache.root / MANIFEST)) and "names g.fits" in message and "missing" in message
    assert cache.verify() == ["g.fits: missing"]


def test_corrupt_manifest_is_a_one_line_error(tmp_path):
    (tmp_path / MANIFEST).write_text('{"entries": [ {"file": ')
    with pytest.raises(WebbcalError, match="manifest is not valid JSON"):
        RefCache(tmp_path).select("gain", science_header())


def test_index_directory_and_unmanifested_directory(tmp_path):
    for i, det in enumerate(("NRCA1", "NRCA2", "NRCA3")):
        _gain(tmp_path, f"jwst_nircam_gain_{i:04d}.fits", detector=det)
    (tmp_path / "notes.fits").write_bytes(b"garbage")  # skipped with a warning
    cache = RefCache(tmp_path)
    assert cache.select("gain", science_header(DETECTOR="NRCA2")).name == "jwst_nircam_gain_0001.fits"
    assert not (tmp_path / MANIFEST).exists()  # indexed in memory only
    entries = index_directory(tmp_path)
    assert [e.file for e in entries] == [f"jwst_nircam_gain_{i:04d}.fits" for i in range(3)]
    assert all(e.sha256 for e in entries)
    assert RefCache(tmp_path).select("gain", science_header(DETECTOR="NRCA3")).name == "jwst_nircam_gain_0002.fits"


def test_crds_path_cache(tmp_path, monkeypatch, every_type):
    nircam = tmp_path / "crds" / CRDS_SUBDIR
    nircam.mkdir(parents=True)
    for label in ("gain", "distortion", "photom", "photom_wfss"):
        shutil.copy(every_type[label], nircam / f"jwst_nircam_{label}_0001{every_type[label].suffix}")
    monkeypatch.delenv("WEBBCAL_REFS", raising=False)
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "crds"))
    cache = RefCache.from_config(None)
    assert cache.root == nircam
    assert cache.select("distortion", science_header()).name == "jwst_nircam_distortion_0001.asdf"
    assert cache.select("photom", science_header()).name == "jwst_nircam_photom_0001.fits"
    wfss = science_header(EXP_TYPE="NRC_WFSS", DETECTOR="NRCALONG", PUPIL="GRISMR", FILTER="F444W")
    assert cache.select("photom", wfss).name == "jwst_nircam_photom_wfss_0001.fits"
    with pytest.raises(ReferenceNotFound, match="no dark reference in the cache at all"):
        cache.select("dark", science_header())
    # explicit argument and WEBBCAL_REFS come first
    monkeypatch.setenv("WEBBCAL_REFS", str(tmp_path / "mine"))
    assert RefCache.from_config(None).root == tmp_path / "mine"
    assert RefCache.from_config(tmp_path / "explicit").root == tmp_path / "explicit"
    monkeypatch.delenv("WEBBCAL_REFS")
    monkeypatch.delenv("CRDS_PATH")
    with pytest.raises(WebbcalError, match="no reference cache"):
        RefCache.from_config(None)


# -- concurrency ------------------------------------------------------------------------

N_WRITERS, FILES_PER_WRITER, N_READS = 3, 6, 60


def _writer(root, staging, writer):
    cache = RefCache(root)
    for i in range(FILES_PER_WRITER):
        value = float(writer * 100 + i)
        # later USEAFTERs for later files: readers then keep switching to the newest file
        useafter = f"2022-01-{1 + i:02d}T{writer:02d}:00:00"
        path = _gain(staging, f"gain_w{writer}_{i:02d}.fits", useafter=useafter, value=value, shape=(64, 64))
        cache.add(path)


def _reader(root, queue, writers_done):
    cache = RefCache(root)
    header = science_header(SUBARRAY="GENERIC", SUBSIZE1=64, SUBSIZE2=64)
    seen = set()
    reads = 0
    try:
        while not writers_done.is_set() or reads < N_READS:
            reads += 1
            try:
                path = cache.select("gain", header)
            except ReferenceNotFound:
                continue
            sci = np.asarray(load_reference(path, "gain", header).arrays["SCI"])
            name = path.stem.split("_")  # gain_w{writer}_{i}
            expected = float(int(name[1][1:]) * 100 + int(name[2]))
            if sci.shape != (64, 64) or not np.all(sci == expected):
                queue.put(f"corrupt read of {path.name}")
                return
            seen.add(path.name)
        queue.put(f"ok {len(seen)}")
    except Exception as exc:  # any failure is what this test looks for
        queue.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_add_and_select_never_read_corrupt(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    staging = []
    for w in range(N_WRITERS):
        staging.append(tmp_path / f"stage{w}")
        staging[-1].mkdir()
    writers = [ctx.Process(target=_writer, args=(root, staging[w], w)) for w in range(N_WRITERS)]
    writers_done = ctx.Event()
    readers = [ctx.Process(target=_reader, args=(root, queue, writers_done)) for _ in range(2)]
    for proc in readers + writers:
        proc.start()
    for proc in writers:
        proc.join(timeout=90)
        assert proc.exitcode == 0
    writers_done.set()
    results = [queue.get(timeout=60) for _ in readers]
    for proc in readers:
        proc.join(timeout=30)
    assert all(r.startswith("ok") for r in results), results
    # the readers really ran while files were being added: they saw more than one newest file
    assert sum(int(r.split()[1]) for r in results) > 2, results
    entries = RefCache(root).entries()
    assert len(entries) == N_WRITERS * FILES_PER_WRITER  # no add lost to a race
    assert RefCache(root).verify() == []
    latest = RefCache(root).select("gain", science_header())
    assert latest.name == f"gain_w{N_WRITERS - 1}_{FILES_PER_WRITER - 1:02d}.fits"


# -- command line ----------------------------------------------------------------------


def test_cli_add_list_select(tmp_path, every_type):
    from astropy.io import fits

    from webbcal.commands.refs import refs

    runner = CliRunner()
    cache = tmp_path / "cache"
    result = runner.invoke(refs, ["add", str(every_type["gain"]), str(every_type["flat"]), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert "added gain" in result.output
    result = runner.invoke(refs, ["list", "--cache", str(cache)])
    assert result.exit_code == 0 and "flat.fits" in result.output and "FILTER=F200W" in result.output
    exposure = tmp_path / "exp_uncal.fits"
    fits.writeto(exposure, np.zeros((2, 2), "f4"), science_header())
    result = runner.invoke(refs, ["select", str(exposure), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert str(cache / "gain.fits") in lines["gain"]
    assert lines["dark"].split()[1] == "N/A"
    result = runner.invoke(refs, ["select", str(exposure), "--cache", str(cache), "--type", "dark"])
    assert result.exit_code != 0 and isinstance(result.exception, ReferenceNotFound)


def test_add_in_place_as_the_simulator_does(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    path = _gain(root, "webbcal_nrca1_gain.fits")
    cache = RefCache(root)
    cache.add(path, "gain")
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [MANIFEST, "webbcal_nrca1_gain.fits"]
    assert cache.verify() == []
