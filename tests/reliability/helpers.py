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


def checkout_env(**environ) -> dict[str, str]:
    """Our environment with this checkout first on PYTHONPATH: child processes import the
    webbcal under test, wherever (or whether) the editable install points."""
    env = dict(os.environ, **environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
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
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
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
    records reference paths, and YAML wraps long lines by length."""
    problems = []
    with fits.open(a) as ha, fits.open(b) as hb:
        if [h.name for h in ha] != [h.name for h in hb]:
            return [f"HDUs {[h.name for h in ha]} != {[h.name for h in hb]}"]
        for xa, xb in zip(ha, hb):
            cards_a, cards_b = _cards(xa, root_a), _cards(xb, root_b)
            if cards_a != cards_b:
                diff = [pair for pair in zip(cards_a, cards_b) if pair[0] != pair[1]][:3]
                problems.append(f"{xa.name} header differs: {diff or 'card count'}")
            if xa.data is None or xb.data is None:
                if (xa.data is None) != (xb.data is None):
                    problems.append(f"{xa.name}: data in one file only")
                continue
            if xa.name == "ASDF":
                if (_asdf_text(bytes(np.asarray(xa.data[0][0])), root_a)
                        != _asdf_text(bytes(np.asarray(xb.data[0][0])), root_b)):
                    problems.append("ASDF extension differs (beyond its history time)")
            elif isinstance(xa, fits.BinTableHDU):
                problems += _table_differences(xa, xb)
            elif np.asarray(xa.data).tobytes() != np.asarray(xb.data).tobytes():
                problems.append(f"{xa.name} data differ")
    return problems


def _table_differences(xa, xb) -> list[str]:
    """Column by column; a column named like a volatile keyword (HDRTAB's DATE and
    CAL_VCS, one row per input header) is the same volatile value, so it is skipped."""
    if xa.columns.names != xb.columns.names:
        return [f"{xa.name} columns {xa.columns.names} != {xb.columns.names}"]
    return [f"{xa.name} column {name} differs" for name in xa.columns.names
            if name.upper() not in VOLATILE_KEYWORDS
            and np.asarray(xa.data[name]).tobytes() != np.asarray(xb.data[name]).tobytes()]


def file_differences(a: Path, b: Path, root_a: str = "", root_b: str = "") -> list[str]:
    if a.suffix == ".fits":
        return fits_differences(a, b, root_a, root_b)
    raw_a, raw_b = a.read_bytes(), b.read_bytes()
    if a.suffix == ".asdf":
        return [] if _asdf_text(raw_a, root_a) == _asdf_text(raw_b, root_b) else ["ASDF differs"]
    return [] if raw_a == raw_b else ["bytes differ"]


def compare_runs(run_a: Path, run_b: Path, output_dir: str = "out") -> dict[str, list[str]]:
    """{relative file: problems} over the products two workflow runs left in
    ``<run>/<output_dir>``; empty when every product is bit-identical (volatile parts aside)."""
    a, b = products_of(Path(run_a) / output_dir), products_of(Path(run_b) / output_dir)
    report = {}
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            report[name] = [f"only in {run_a.name if name in a else run_b.name}"]
            continue
        problems = file_differences(a[name], b[name], str(run_a), str(run_b))
        if problems:
            report[name] = problems
    return report


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
    outcome = run_process(command, run_dir, timeout=600)
    assert outcome.code == 0, outcome.stderr[-3000:]
    return run_dir
