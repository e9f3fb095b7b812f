"""Shared tools of the reliability tests: a tiny simulated program, running an entry point
(in this process or as a real one), and comparing products byte for byte.

Running ``webbcal`` in-process keeps the 40-odd bad-input cases fast; the same cases are
also run as real processes for one case per entry point (``test_bad_input.py``), so what
a user sees on a terminal is checked too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from webbcal.io.atomic import TEMP_PREFIX

ROOT = Path(__file__).resolve().parents[2]

# The smallest program the simulator makes: one SUB64P exposure of 4 groups (~ 3 s).
TINY_PROGRAM = dict(subarray="SUB64P", ngroups=4, ndither=1, nsources=5)
# The workflow runs of the kill/determinism tests: 3 exposures, each Detector1 job ~ 1-2 s.
SMALL_WORKFLOW = dict(subarray="SUB160", ngroups=5, ndither=3, nsources=20)

# What legitimately differs between two runs of the same inputs, named explicitly:
#  * DATE: the time the file was written;
#  * CAL_VCS: the checkout's working-tree hash, which changes when the code is edited
#    between two runs (never within one);
#  * inside HISTORY cards and the ASDF extension: the processing time of the provenance
#    entry ("webbcal 0.1.0 (<vcs>) <time>", ASDF "date:") and the same vcs hash;
#  * the DATE and CAL_VCS columns of a mosaic's HDRTAB (its inputs' keywords).
VOLATILE_KEYWORDS = ("DATE", "CAL_VCS")
_VOLATILE_TEXT = [
    re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?"),  # an ISO time
    re.compile(r"(?<=vcs: )[0-9a-f]{6,40}|(?<=\()[0-9a-f]{6,40}(?=\))"),  # the vcs hash
]

_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ (DEBUG|INFO|WARNING): ")


# ----------------------------------------------------------------------- programs


def simulate_tiny(outdir: Path, seed: int = 3, **overrides) -> Path:
    from webbcal.simulate.program import settings_for, simulate_program

    simulate_program(outdir, settings_for("demo", **{**TINY_PROGRAM, **overrides}), seed)
    return Path(outdir)


# ----------------------------------------------------------------------- running


@dataclass
class Outcome:
    code: int
    stderr: str

    def error_lines(self, ignore=()) -> list[str]:
        """stderr without log records and the given chatter: what must be one error line."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return [line for line in lines if not _LOG_LINE.match(line)
                and not any(line.startswith(prefix) for prefix in ignore)]


def run_in_process(main, argv: list[str]) -> Outcome:
    """Call an entry point's ``main(argv)`` as the console script would, capturing stderr.

    Warnings are shown (not recorded by pytest) so a stray one counts as an extra line.
    """
    err = io.StringIO()
    code = 0
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    err.write(exc.code + "\n")
    return Outcome(code, err.getvalue())


# The code that child processes (webbcal commands, Snakemake workflows) run: this checkout,
# or, while a session's workflow runs are compared (``conftest.workflow_runs``), a copy of
# it frozen when the first of them started. Other people edit the checkout while a slow
# session runs; a reference run and a later run must not execute different code (in a loop
# of runs, an edit of webbcal/image3 + webbcal/io/product.py landing between two runs gave
# crf files without their provenance records: "ASDF extension differs").
_code_root: Path = ROOT
FROZEN_ITEMS = ("Snakefile", "webbcal", "scripts", "rules", "config", "envs", "report", "profiles",
                "pyproject.toml")


def code_root() -> Path:
    return _code_root


def freeze_checkout(dest: Path) -> Path:
    """Copy the checkout's workflow code into ``dest`` (run it with ``running_code_from``).
    The git HEAD is copied too, so products keep their CAL_VCS."""
    import shutil

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    for name in FROZEN_ITEMS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, dest / name)
    git = ROOT / ".git"
    if git.is_dir():  # what webbcal.io.provenance.vcs_revision reads
        for name in ("HEAD", "packed-refs", "refs"):
            if (git / name).is_dir():
                shutil.copytree(git / name, dest / ".git" / name, dirs_exist_ok=True)
            elif (git / name).is_file():
                (dest / ".git").mkdir(exist_ok=True)
                shutil.copy2(git / name, dest / ".git" / name)
    return dest


@contextlib.contextmanager
def running_code_from(root: Path):
    """Child processes started in the block (``checkout_env``, ``snakemake_command``) run
    the code under ``root``; the previous code root is restored afterwards."""
    global _code_root
    previous, _code_root = _code_root, Path(root)
    try:
        yield _code_root
    finally:
        _code_root = previous


def checkout_env(**environ) -> dict[str, str]:
    """Our environment with this checkout (or its frozen copy, see ``freeze_checkout``)
    first on PYTHONPATH: child processes import the webbcal under test, wherever (or
    whether) the editable install points."""
    env = dict(os.environ, **environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(code_root()), env.get("PYTHONPATH", "")) if p)
    return env


def run_process(command: list[str], cwd: Path, timeout: float = 120, **environ) -> Outcome:
    env = checkout_env(**environ)
    env.pop("WEBBCAL_REFS", None)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return Outcome(done.returncode, done.stderr)


def load_script(name: str):
    """``scripts/<name>.py`` as a module (its ``run(argv)`` is the command line)."""
    spec = importlib.util.spec_from_file_location(f"webbcal_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from webbcal.commands.rule_script import run_rule_script

    def run(argv=None):
        return run_rule_script(module.main, module.arguments_from_rule, {}, f"{name}.py", argv)

    module.run = run
    return module


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(code_root() / "Snakefile"),
            "--directory", str(workdir), *args]


def temporaries(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob(f"{TEMP_PREFIX}*"))


# ----------------------------------------------------------------------- comparing


def products_of(output_dir: Path) -> dict[str, Path]:
    """Every file a run leaves under output_dir (relative name -> path), logs excluded."""
    out = {}
    for path in sorted(Path(output_dir).rglob("*")):
        rel = path.relative_to(output_dir).as_posix()
        if path.is_file() and not rel.startswith("logs/") and not path.name.startswith(".snakemake"):
            out[rel] = path
    return out


def _normalised(text: str, root: str = "") -> str:
    """``text`` with the volatile times and hashes, and the run's directory, replaced."""
    if root:
        text = text.replace(root, "<run>")
    for pattern in _VOLATILE_TEXT:
        text = pattern.sub("<volatile>", text)
    return text


def _cards(hdu, root: str) -> list[tuple[str, str]]:
    return [(c.keyword, _normalised(str(c.value), root) if c.keyword == "HISTORY" else str(c.value))
            for c in hdu.header.cards if c.keyword not in VOLATILE_KEYWORDS]


def _asdf_text(raw: bytes, root: str) -> str:
    return _normalised(raw.decode("latin-1"), root)


def fits_differences(a: Path, b: Path, root_a: str = "", root_b: str = "") -> list[str]:
    """How two FITS files differ, ignoring the volatile keywords and times named above.

    Data are compared as bytes (bit-identical, NaN patterns included). Runs compared
    must live in directories of equal name length (``root_a``, ``root_b``): provenance
    records reference paths, and YAML wraps long lines by length.

    Each problem says exactly what differs (the cards, how many pixels and by how much,
    the ASDF lines), so a failure is diagnosable from its message alone."""
    problems = []
    with fits.open(a) as ha, fits.open(b) as hb:
        if [h.name for h in ha] != [h.name for h in hb]:
            return [f"HDUs {[h.name for h in ha]} != {[h.name for h in hb]}"]
        for xa, xb in zip(ha, hb):
            cards_a, cards_b = _cards(xa, root_a), _cards(xb, root_b)
            if cards_a != cards_b:
                problems.append(f"{xa.name} header differs ({len(cards_a)} vs {len(cards_b)} cards):\n"
                                + _line_diff([f"{k} = {v}" for k, v in cards_a],
                                             [f"{k} = {v}" for k, v in cards_b]))
            if xa.data is None or xb.data is None:
                if (xa.data is None) != (xb.data is None):
                    problems.append(f"{xa.name}: data in one file only")
                continue
            if xa.name == "ASDF":
                raw_a, raw_b = bytes(np.asarray(xa.data[0][0])), bytes(np.asarray(xb.data[0][0]))
                if _asdf_text(raw_a, root_a) != _asdf_text(raw_b, root_b):
                    problems.append("ASDF extension differs (beyond its history time):\n"
                                    + _asdf_diff(raw_a, raw_b, root_a, root_b))
            elif isinstance(xa, fits.BinTableHDU):
                problems += _table_differences(xa, xb)
            else:
                da, db = np.asarray(xa.data), np.asarray(xb.data)
                if da.tobytes() != db.tobytes():
                    problems.append(f"{xa.name} data differ: {array_difference(da, db)}")
    return problems


def _line_diff(lines_a: list[str], lines_b: list[str], limit: int = 40) -> str:
    """The changed lines of a unified diff (no context), at most ``limit`` of them."""
    import difflib

    changed = [line for line in difflib.unified_diff(lines_a, lines_b, "a", "b", n=0, lineterm="")
               if not line.startswith(("---", "+++"))]
    shown = changed[:limit] + ([f"... {len(changed) - limit} more diff lines"] if len(changed) > limit else [])
    return "\n".join("    " + line for line in shown)


def _bitwise(values: np.ndarray) -> np.ndarray:
    """Each element as an unsigned integer of its size: equality is bit equality (NaN too)."""
    values = np.ascontiguousarray(values)
    if values.dtype.itemsize in (1, 2, 4, 8) and values.dtype.kind in "fiub":
        return values.view(f"u{values.dtype.itemsize}")
    return values.view(np.uint8).reshape(values.shape + (-1,)) if values.ndim else values


def array_difference(a: np.ndarray, b: np.ndarray, shown: int = 5) -> str:
    """How two arrays differ bit for bit: how many elements, where, by how much."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shape/dtype {a.shape} {a.dtype} != {b.shape} {b.dtype}"
    ba, bb = _bitwise(a), _bitwise(b)
    differ = ba != bb
    if differ.ndim > a.ndim:
        differ = differ.any(axis=-1)
    where = np.argwhere(differ)
    text = f"{len(where)} of {a.size} elements ({a.dtype}, shape {a.shape})"
    if a.dtype.kind == "f" and len(where):
        va, vb = a[differ].astype(np.float64), b[differ].astype(np.float64)
        both = np.isfinite(va) & np.isfinite(vb)
        nan_pattern = int(np.count_nonzero(np.isnan(va) != np.isnan(vb)))
        if both.any():
            delta = np.abs(va[both] - vb[both])
            scale = np.maximum(np.abs(va[both]), np.abs(vb[both]))
            relative = np.divide(delta, scale, out=np.zeros_like(delta), where=scale > 0)
            text += f"; max |a-b| {delta.max():.3g}, max relative {relative.max():.3g}"
        text += f"; NaN pattern differs at {nan_pattern}"
    samples = ", ".join(f"{tuple(int(i) for i in index)}: {_scalar(a[tuple(index)])} vs {_scalar(b[tuple(index)])}"
                        for index in where[:shown])
    return text + (f"; first at {samples}" if samples else "")


def _scalar(value) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _asdf_parts(raw: bytes, root: str) -> tuple[list[str], bytes]:
    """An ASDF file as (normalised YAML lines, the binary rest: blocks and block index)."""
    end = raw.find(b"\n...\n")
    head, rest = (raw, b"") if end < 0 else (raw[: end + 5], raw[end + 5:])
    return _asdf_text(head, root).splitlines(), rest


def _asdf_diff(raw_a: bytes, raw_b: bytes, root_a: str, root_b: str) -> str:
    yaml_a, blocks_a = _asdf_parts(raw_a, root_a)
    yaml_b, blocks_b = _asdf_parts(raw_b, root_b)
    parts = [f"    {len(raw_a)} vs {len(raw_b)} bytes"]
    if yaml_a != yaml_b:
        parts.append(_line_diff(yaml_a, yaml_b))
    if blocks_a != blocks_b:
        parts.append(f"    binary blocks / block index differ: {_byte_difference(blocks_a, blocks_b)}")
    return "\n".join(parts)


def _byte_difference(a: bytes, b: bytes) -> str:
    common = min(len(a), len(b))
    va, vb = np.frombuffer(a[:common], np.uint8), np.frombuffer(b[:common], np.uint8)
    offsets = np.flatnonzero(va != vb)
    text = f"{len(a)} vs {len(b)} bytes, {len(offsets)} of the first {common} differ"
    if len(offsets):
        at = int(offsets[0])
        text += f", first at offset {at}: {a[at:at + 16]!r} vs {b[at:at + 16]!r}"
    return text


def _table_differences(xa, xb) -> list[str]:
    """Column by column; a column named like a volatile keyword (HDRTAB's DATE and
    CAL_VCS, one row per input header) is the same volatile value, so it is skipped."""
    if xa.columns.names != xb.columns.names:
        return [f"{xa.name} columns {xa.columns.names} != {xb.columns.names}"]
    problems = []
    for name in xa.columns.names:
        ca, cb = np.asarray(xa.data[name]), np.asarray(xb.data[name])
        if name.upper() not in VOLATILE_KEYWORDS and ca.tobytes() != cb.tobytes():
            problems.append(f"{xa.name} column {name} differs: {array_difference(ca, cb)}")
    return problems


def file_differences(a: Path, b: Path, root_a: str = "", root_b: str = "") -> list[str]:
    if a.suffix == ".fits":
        return fits_differences(a, b, root_a, root_b)
    raw_a, raw_b = a.read_bytes(), b.read_bytes()
    if a.suffix == ".asdf":
        if _asdf_text(raw_a, root_a) == _asdf_text(raw_b, root_b):
            return []
        return ["ASDF differs:\n" + _asdf_diff(raw_a, raw_b, root_a, root_b)]
    if raw_a == raw_b:
        return []
    try:
        text_a, text_b = raw_a.decode("utf-8"), raw_b.decode("utf-8")
    except UnicodeDecodeError:  # a PNG, say
        return [f"bytes differ: {_byte_difference(raw_a, raw_b)}"]
    return [f"text differs ({len(raw_a)} vs {len(raw_b)} bytes):\n"
            + _line_diff(text_a.splitlines(), text_b.splitlines())]


def compare_runs(run_a: Path, run_b: Path, output_dir: str = "out") -> dict[str, list[str]]:
    """{relative file: problems} over the products two workflow runs left in
    ``<run>/<output_dir>``; empty when every product is bit-identical (volatile parts aside)."""
    run_a, run_b = Path(run_a), Path(run_b)
    a, b = products_of(run_a / output_dir), products_of(run_b / output_dir)
    report = {}
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            report[name] = [f"only in {run_a.name if name in a else run_b.name}"]
            continue
        problems = file_differences(a[name], b[name], str(run_a), str(run_b))
        if problems:
            report[name] = problems
    return report


def format_report(report: dict[str, list[str]], run_a: Path, run_b: Path) -> str:
    """The whole of ``compare_runs``' report as text, with what else differed between the
    runs (the checkout's code, the environment) that could explain it."""
    lines = [f"{len(report)} product(s) differ between {run_a} and {run_b}:"]
    for name, problems in report.items():
        lines.append(f"  {name}:")
        lines += ["    " + problem.replace("\n", "\n    ") for problem in problems]
    lines += run_context_differences(run_a, run_b)
    return "\n".join(lines)


def assert_same_products(run_a: Path, run_b: Path, output_dir: str = "out") -> None:
    """Fail with the full difference report (not pytest's truncated dict diff)."""
    report = compare_runs(run_a, run_b, output_dir)
    if report:
        raise AssertionError(format_report(report, Path(run_a), Path(run_b)))


# ----------------------------------------------------------------------- run context

# What a workflow run's products follow beside its inputs: the code and configuration of
# the checkout (which other people may edit while a slow test runs) and the environment.
_CODE = FROZEN_ITEMS
_CODE_SUFFIXES = (".py", ".smk", ".yaml", ".yml", ".json", ".rst", ".txt", ".toml", ".sh", "")
_ENVIRONMENT = ("PYTHONHASHSEED", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "WEBBCAL_REFS", "CRDS_PATH", "PYTHONPATH")


def checkout_fingerprint(root: Path | None = None) -> dict[str, str]:
    """{file: sha256} of the code and configuration (Snakefile, webbcal/, ...) under
    ``root`` (default: what child processes run, ``code_root()``)."""
    import hashlib

    root = Path(root or code_root())
    found = {}
    for top in _CODE:
        path = root / top
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for file in files:
            if (file.is_file() and "__pycache__" not in file.parts and file.suffix in _CODE_SUFFIXES
                    and not file.name.startswith(".")):
                found[file.relative_to(root).as_posix()] = hashlib.sha256(file.read_bytes()).hexdigest()
    return found


def _context_file(run_dir: Path) -> Path:
    return Path(run_dir) / "run_context.json"  # beside out/, so never compared as a product


def record_run_context(run_dir: Path, when: str, **extra) -> None:
    """Keep the checkout's fingerprint and the environment at ``when`` (start, end)."""
    import json

    path = _context_file(run_dir)
    context = json.loads(path.read_text()) if path.exists() else {}
    context[when] = {"code": checkout_fingerprint(), "code_root": str(code_root()),
                     "environ": {k: os.environ.get(k) for k in _ENVIRONMENT}, **extra}
    path.write_text(json.dumps(context, indent=1, sort_keys=True))


def run_context_differences(run_a: Path, run_b: Path) -> list[str]:
    """Code files that changed during or between the two runs, and differing settings."""
    import json

    contexts = []
    for run in (run_a, run_b):
        path = _context_file(run)
        contexts.append(json.loads(path.read_text()) if path.exists() else {})
    snapshots = [(f"{run.name} {when}", ctx[when]) for run, ctx in zip((run_a, run_b), contexts)
                 for when in ("start", "end") if when in ctx]
    if len(snapshots) < 2:
        return ["  (no run context recorded: cannot tell whether the checkout changed)"]
    first_label, first = snapshots[0]
    lines = []
    for label, snap in snapshots[1:]:
        changed = sorted(name for name in set(first["code"]) | set(snap["code"])
                         if first["code"].get(name) != snap["code"].get(name))
        if changed:
            lines.append(f"  the checkout's code changed between {first_label} and {label}: "
                         + ", ".join(changed[:20]) + (" ..." if len(changed) > 20 else ""))
    if not lines:
        lines.append("  the checkout's code was the same from the start of the first run to the end of the second")
    start_a, start_b = contexts[0].get("start", {}), contexts[1].get("start", {})
    roots = (start_a.get("code_root"), start_b.get("code_root"))
    lines.append(f"  code run from {roots[0]}" if roots[0] == roots[1]
                 else f"  code run from {roots[0]} and {roots[1]}")
    for key in sorted((set(start_a) | set(start_b)) - {"code", "environ", "code_root"}):
        if start_a.get(key) != start_b.get(key):
            lines.append(f"  {key}: {start_a.get(key)} ({run_a.name}) vs {start_b.get(key)} ({run_b.name})")
    env_a, env_b = start_a.get("environ", {}), start_b.get("environ", {})
    env_changes = {k: (env_a.get(k), env_b.get(k)) for k in _ENVIRONMENT if env_a.get(k) != env_b.get(k)}
    if env_changes:
        lines.append(f"  environment ({run_a.name}, {run_b.name}): {env_changes}")
    return lines


# ----------------------------------------------------------------------- workflow runs

WORKFLOW_CONFIG = {"output_dir": "out", "simulate": {**SMALL_WORKFLOW, "seed": 5}}


def prepare_run(run_dir: Path) -> list[str]:
    """A fresh working directory with the small program's config; the snakemake command."""
    import shutil

    import yaml

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "my.yaml").write_text(yaml.safe_dump(WORKFLOW_CONFIG))
    return snakemake_command(run_dir, "--configfile", str(run_dir / "my.yaml"))


def run_workflow(run_dir: Path, cores: int) -> Path:
    command = prepare_run(run_dir) + ["--cores", str(cores)]
    record_run_context(run_dir, "start", cores=cores)
    outcome = run_process(command, run_dir, timeout=600)
    record_run_context(run_dir, "end", cores=cores)
    assert outcome.code == 0, outcome.stderr[-3000:]
    return run_dir
