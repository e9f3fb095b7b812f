"""Shared helpers for the benchmarks: measured child processes, robust statistics, tables.

A benchmark runs each contender as its own process pinned to one core, with the numerical
libraries limited to one thread, and records the whole-process wall time and peak
resident memory. Peak memory comes from ``/usr/bin/time -v`` when it is installed, else
from ``os.wait4`` (the kernel's rusage of exactly that child).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GNU_TIME = "/usr/bin/time"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@dataclass
class Measurement:
    """One measured child process."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    log_path: Path
    step_seconds: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])


def single_thread_env(env: dict | None = None) -> dict[str, str]:
    """``env`` (default: ours) with every numerical library pinned to one thread."""
    out = dict(os.environ if env is None else env)
    out.update({name: "1" for name in THREAD_VARIABLES})
    return out


def core_pinning(cpu: int = 0) -> list[str]:
    """``taskset -c CPU`` when available (Linux), else nothing."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu)] if taskset else []


def measure_process(argv: list[str], env: dict, log_path, cpu: int | None = 0) -> Measurement:
    """Run ``argv`` pinned to ``cpu``; return its wall time and peak RSS (stdout+err to log)."""
    log_path = Path(log_path)
    pin = core_pinning(cpu) if cpu is not None else []
    use_gnu_time = os.access(GNU_TIME, os.X_OK)
    handle, name = tempfile.mkstemp(prefix="time_", suffix=".txt", dir=log_path.parent)
    os.close(handle)
    time_file = Path(name)
    prefix = [GNU_TIME, "-v", "-o", str(time_file)] if use_gnu_time else []
    start = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(prefix + pin + list(argv), env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except ChildProcessError:  # already reaped
            status, usage = 0, None
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = usage.ru_maxrss / 1024 if usage is not None else float("nan")
    if use_gnu_time:
        parsed = parse_gnu_time(time_file.read_text(errors="replace"))
        peak_mb = parsed.get("peak_rss_mb", peak_mb)
    time_file.unlink(missing_ok=True)
    return Measurement(wall_s=wall, peak_rss_mb=peak_mb, returncode=child.returncode,
                       log_path=log_path)


def parse_gnu_time(text: str) -> dict[str, float]:
    """Peak RSS (MB) and elapsed seconds from ``/usr/bin/time -v`` output."""
    out = {}
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if rss:
        out["peak_rss_mb"] = int(rss.group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if wall:
        seconds = 0.0
        for part in wall.group(1).split(":"):
            seconds = seconds * 60 + float(part)
        out["elapsed_s"] = seconds
    return out


def median_measurement(runs: list[Measurement]) -> Measurement:
    """Median of wall time, peak RSS, each step's seconds and numeric extras over runs.

    Non-numeric extras (output paths) are those of the last run.
    """
    steps = sorted({k for r in runs for k in r.step_seconds})
    extra = dict(runs[-1].extra)
    for key, value in extra.items():
        values = [r.extra.get(key) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            extra[key] = statistics.median(values)
    return Measurement(
        wall_s=statistics.median(r.wall_s for r in runs),
        peak_rss_mb=statistics.median(r.peak_rss_mb for r in runs),
        returncode=max(r.returncode for r in runs),
        log_path=runs[-1].log_path,
        step_seconds={k: statistics.median(r.step_seconds[k] for r in runs if k in r.step_seconds)
                      for k in steps},
        extra=extra,
    )


# --------------------------------------------------------------------------- statistics

def robust_sigma(values) -> float:
    """1.4826 × median absolute deviation: the Gaussian sigma, insensitive to outliers."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or not np.isfinite(a) or not np.isfinite(b):
        return "-"
    return f"{a / b:.2f}"


# --------------------------------------------------------------------------- printing

def format_table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    """A Markdown table (readable as plain text too)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not np.isfinite(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"
    return str(value)


def publish_report(sections: list[str], workdir: Path, name: str) -> Path:
    """Print the report's sections and save them as ``<workdir>/<name>_report.md``."""
    text = "\n\n".join(sections)
    print()
    print(text)
    path = Path(workdir) / f"{name}_report.md"
    path.write_text(text + "\n")
    print(f"\nreport and outputs in {workdir}")
    return path
