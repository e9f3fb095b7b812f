"""Run the official pipeline (jwst 3.0.0) fully offline, each call in a fresh interpreter.

jwst is a test oracle only: this module never imports it in the calling process. Each
run is a child ``python`` executing this very file, with the CRDS variables set in its
environment before anything imports jwst (the facts are in
``/work/shared/spec/official_pipeline_offline.md``):

* every reference type of every step that runs is overridden (``override_<reftype>``);
  reference types that do not exist for NIRCam imaging get ``"N/A"``;
* the MIRI-only steps are skipped, because the pipeline prefetches the references of
  every step that is not skipped;
* CRDS parameter files are disabled, so step parameters are the code defaults;
* CRDS gets a stub cache whose ``server_config`` answers "which context" without a server;
* the child's sockets refuse to connect, so a run that succeeds never needed a server;
* an input without an ``ASDF`` extension (webbcal writes none when it has no tree) is
  opened as a model first: stpipe reads a *path*'s CRDS parameters from that extension.

The child reports what it wrote (and per-step seconds, parsed from stpipe's "Step X
running" / "Step X done" log lines) as JSON, so callers can also wrap the command (e.g. in
``/usr/bin/time -v``) to measure it.

Usage::

    refs = {"mask": ".../mask.fits", "saturation": ..., ...}
    out = run_official_detector1(uncal, refs, tmp_path / "official", save_intermediates=True)
    out.outputs["rate"], out.outputs["dq_init"], out.step_seconds["jump"]
    run_official_step("saturation", out.outputs["dq_init"], refs, tmp_path / "sat.fits")
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

CRDS_CONTEXT = "jwst_0000.pmap"
# The serverless sentinel URL: CRDS recognises it and never contacts it.
CRDS_SERVERLESS_URL = "https://jwst-serverless-mode.stsci.edu"

# Reference types of each Detector1 step in jwst 3.0.0 (``reference_file_types``).
DETECTOR1_REFTYPES: dict[str, tuple[str, ...]] = {
    "group_scale": (),
    "dq_init": ("mask",),
    "emicorr": ("emicorr",),
    "saturation": ("saturation", "superbias"),
    "ipc": ("ipc",),
    "superbias": ("superbias",),
    "refpix": ("refpix", "sirskernel"),
    "rscd": ("rscd",),
    "firstframe": (),
    "lastframe": (),
    "linearity": ("linearity",),
    "dark_current": ("dark",),
    "reset": ("reset",),
    "persistence": (),
    "charge_migration": (),
    "jump": ("gain", "readnoise"),
    "picture_frame": ("pictureframe",),
    "clean_flicker_noise": ("flat", "pastasoss"),
    "ramp_fit": ("readnoise", "gain"),
    "gain_scale": ("gain",),
}

# Steps that only apply to MIRI; the NIR branch never calls them, but prefetch would.
MIRI_ONLY_STEPS = ("emicorr", "rscd", "reset", "firstframe", "lastframe")

# Reference types a NIRCam imaging exposure has no file for: CRDS answers "N/A", and the
# step skips itself (ipc: NIRCam has no IPC reference in operations).
NOT_APPLICABLE = "N/A"
NIRCAM_NOT_APPLICABLE = ("refpix", "sirskernel", "ipc", "emicorr", "rscd", "reset",
                         "pictureframe", "flat", "pastasoss")

# Stand-alone step classes by pipeline alias (``jwst.<package>.<Class>``).
STEP_CLASSES: dict[str, str] = {
    "group_scale": "jwst.group_scale.GroupScaleStep",
    "dq_init": "jwst.dq_init.DQInitStep",
    "saturation": "jwst.saturation.SaturationStep",
    "ipc": "jwst.ipc.IPCStep",
    "superbias": "jwst.superbias.SuperBiasStep",
    "refpix": "jwst.refpix.RefPixStep",
    "linearity": "jwst.linearity.LinearityStep",
    "dark_current": "jwst.dark_current.DarkCurrentStep",
    "persistence": "jwst.persistence.PersistenceStep",
    "charge_migration": "jwst.charge_migration.ChargeMigrationStep",
    "jump": "jwst.jump.JumpStep",
    "ramp_fit": "jwst.ramp_fitting.RampFitStep",
    "gain_scale": "jwst.gain_scale.GainScaleStep",
}

# Steps whose work can use several processes; pinned to one for reproducible timing.
# The start of every small official-pipeline child script (Image2, Image3, Spec2): read the
# request, refuse network connections (CRDS must not be asked), and time each stpipe step
# from its log lines into ``seconds``.
CHILD_PRELUDE = textwrap.dedent('''
    import json, logging, os, socket, sys, time
    request = json.load(open(sys.argv[1]))
    def refuse(*a, **k):
        raise OSError("offline oracle: network connection attempted")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    seconds, started = {}, {}
    class Clock(logging.Handler):
        def emit(self, record):
            if record.msg == "Step %s running with args %s.":
                started[record.args[0]] = time.perf_counter()
            elif record.msg == "Step %s done" and record.args[0] in started:
                seconds[record.args[0]] = time.perf_counter() - started[record.args[0]]
    logging.getLogger("stpipe").addHandler(Clock(level=logging.INFO))
    logging.getLogger("stpipe").setLevel(logging.INFO)
''')

MULTICORE_STEPS = ("jump", "ramp_fit")

# Variables that pin numerical libraries to one thread.
SINGLE_THREAD_ENV = {name: "1" for name in (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS")}


class OfficialPipelineError(RuntimeError):
    """The official pipeline's child process failed; the message carries its stderr tail."""


@dataclass
class OfficialRun:
    """What one child run produced."""

    outputs: dict[str, Path]                      # suffix ("rate", "dq_init", ...) -> file
    step_seconds: dict[str, float] = field(default_factory=dict)
    call_seconds: float = 0.0                     # the ``.call(...)`` itself
    import_seconds: float = 0.0                   # importing jwst in the child
    log_path: Path | None = None


@dataclass
class ChildJob:
    """A prepared child run: the command, its environment, and where it reports."""

    argv: list[str]
    env: dict[str, str]
    report_path: Path
    log_path: Path

    def run(self, prefix: list[str] | None = None, timeout: float | None = 3600) -> OfficialRun:
        """Run the child (optionally under ``prefix``, e.g. ``/usr/bin/time -v``)."""
        argv = list(prefix or []) + self.argv
        with open(self.log_path, "w") as log:
            done = subprocess.run(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False)
        if done.returncode != 0 or not self.report_path.exists():
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-25:]
            raise OfficialPipelineError(
                f"official pipeline child exited with {done.returncode}; last log lines:\n"
                + "\n".join(tail))
        return read_report(self.report_path, self.log_path)


# --------------------------------------------------------------------------- environment

def offline_environment(tmpdir) -> dict[str, str]:
    """Create a stub CRDS cache under ``tmpdir`` and return the CRDS variables for it.

    The cache holds only ``config/jwst/server_config``; with it CRDS can name the
    context after each step without a server, and nothing is ever downloaded.
    """
    cache = Path(tmpdir) / "crds_stub_cache"
    config_dir = cache / "config" / "jwst"
    config_dir.mkdir(parents=True, exist_ok=True)
    server_config = {
        "observatory": "jwst",
        "operational_context": CRDS_CONTEXT,
        "latest_context": CRDS_CONTEXT,
        "edit_context": CRDS_CONTEXT,
        "versions_context": CRDS_CONTEXT,
        "force_remote_mode": False,
        "bad_files_list": [],
        "last_synced": "2026-01-01 00:00:00",
    }
    (config_dir / "server_config").write_text(repr(server_config) + "\n")
    return {
        "CRDS_PATH": str(cache),
        "CRDS_SERVER_URL": CRDS_SERVERLESS_URL,
        "CRDS_MODE": "local",
        "CRDS_CONTEXT": CRDS_CONTEXT,
        "CRDS_OBSERVATORY": "jwst",
        "STPIPE_DISABLE_CRDS_STEPPARS": "true",
    }


def child_environment(workdir, single_thread: bool = True) -> dict[str, str]:
    """The full environment of a child: ours, minus webbcal's cache, plus offline CRDS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.pop("WEBBCAL_REFS", None)
    env.update(offline_environment(workdir))
    if single_thread:
        env.update(SINGLE_THREAD_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --------------------------------------------------------------------------- references

# Reference types the NIRCam imaging Detector1 steps that run by default need.
NIRCAM_DETECTOR1_REFTYPES = ("mask", "saturation", "superbias", "linearity", "dark", "gain",
                             "readnoise")


def webbcal_references(cache_root, uncal, optional=("ipc",)) -> dict[str, Path]:
    """The files webbcal's reference cache selects for ``uncal``: one per reference type.

    Both pipelines are then given exactly these files. ``optional`` types are included
    only when the cache has one (NIRCam has no IPC reference in operations).
    """
    from astropy.io import fits

    from webbcal.errors import ReferenceNotFound
    from webbcal.refs import RefCache

    cache = RefCache(cache_root)
    header = fits.getheader(uncal)
    refs = {r: Path(cache.select(r, header)) for r in NIRCAM_DETECTOR1_REFTYPES}
    for reftype in optional:
        try:
            refs[reftype] = Path(cache.select(reftype, header))
        except ReferenceNotFound:
            pass
    return refs


# --------------------------------------------------------------------------- step parameters

def step_overrides(step: str, refs: dict[str, str | os.PathLike]) -> dict[str, str]:
    """``override_<reftype>`` parameters of one step: given files, else "N/A" where allowed."""
    params = {}
    for reftype in DETECTOR1_REFTYPES[step]:
        if reftype in refs and refs[reftype] is not None:
            params[f"override_{reftype}"] = str(refs[reftype])
        elif reftype in NIRCAM_NOT_APPLICABLE:
            params[f"override_{reftype}"] = NOT_APPLICABLE
        else:
            raise ValueError(f"step {step} needs a {reftype} reference file; none given")
    return params


def detector1_step_parameters(refs: dict, steps_extra: dict | None = None,
                              save_intermediates: bool = False) -> dict[str, dict]:
    """The ``steps={...}`` argument of ``Detector1Pipeline.call`` for an offline run."""
    extra = {k: dict(v) for k, v in (steps_extra or {}).items()}
    unknown = set(extra) - set(DETECTOR1_REFTYPES)
    if unknown:
        raise ValueError(f"unknown Detector1 step(s): {', '.join(sorted(unknown))}")
    steps: dict[str, dict] = {}
    for step in DETECTOR1_REFTYPES:
        if step in MIRI_ONLY_STEPS:
            steps[step] = {"skip": True}
            continue
        wanted = extra.get(step, {})
        will_skip = bool(wanted.get("skip", False))
        try:
            params = step_overrides(step, refs)
        except ValueError:
            if not will_skip:
                raise
            params = {f"override_{r}": NOT_APPLICABLE for r in DETECTOR1_REFTYPES[step]}
        if step in MULTICORE_STEPS:
            params["maximum_cores"] = "1"
        if save_intermediates and step not in ("group_scale", "ramp_fit", "gain_scale"):
            params["save_results"] = True
        params.update(wanted)
        steps[step] = params
    return steps


# --------------------------------------------------------------------------- public runners

def prepare_official_detector1(uncal, refs: dict, output_dir, steps_extra: dict | None = None,
                               save_intermediates: bool = False,
                               forbid_network: bool = True) -> ChildJob:
    """Build the child job that runs ``Detector1Pipeline.call`` on ``uncal``."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    request = {
        "kind": "pipeline",
        "input": str(Path(uncal).resolve()),
        "output_dir": str(output_dir),
        "steps": detector1_step_parameters(refs, steps_extra, save_intermediates),
        "forbid_network": forbid_network,
    }
    return _prepare(request, output_dir)


def run_official_detector1(uncal, refs: dict, output_dir, steps_extra: dict | None = None,
                           save_intermediates: bool = False) -> OfficialRun:
    """Run the official Detector1 on ``uncal`` with every reference overridden.

    Returns the files written: ``outputs["rate"]``, ``outputs["rateints"]`` and, with
    ``save_intermediates``, one per step (``dq_init``, ``saturation``, ``superbias``,
    ``refpix``, ``linearity``, ``dark_current``, ``jump``, ...).
    """
    return prepare_official_detector1(uncal, refs, output_dir, steps_extra,
                                      save_intermediates).run()


def run_official_step(step: str, input_path, refs: dict, output, params: dict | None = None,
                      forbid_network: bool = True) -> OfficialRun:
    """Run one official step stand-alone on ``input_path`` and save it as ``output``.

    ``step`` is the pipeline alias (``saturation``) or the class name (``SaturationStep``).
    ramp_fit writes ``output`` (rate) and ``<output stem>ints.fits`` (rateints):
    ``outputs["rate"]``, ``outputs["rateints"]``; other steps give ``outputs[step]``.
    """
    alias = _step_alias(step)
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    step_params = step_overrides(alias, refs)
    if alias in MULTICORE_STEPS:
        step_params["maximum_cores"] = "1"
    step_params.update(params or {})
    request = {
        "kind": "step",
        "step": alias,
        "class": STEP_CLASSES[alias],
        "input": str(Path(input_path).resolve()),
        "output": str(output),
        "params": step_params,
        "forbid_network": forbid_network,
    }
    return _prepare(request, output.parent, tag=f"{alias}_{output.stem}").run()


def read_report(report_path, log_path=None) -> OfficialRun:
    report = json.loads(Path(report_path).read_text())
    return OfficialRun(outputs={k: Path(v) for k, v in report["outputs"].items()},
                       step_seconds=report["step_seconds"],
                       call_seconds=report["call_seconds"],
                       import_seconds=report["import_seconds"],
                       log_path=Path(log_path) if log_path else None)


def _step_alias(step: str) -> str:
    if step in STEP_CLASSES:
        return step
    by_class = {path.rsplit(".", 1)[1]: alias for alias, path in STEP_CLASSES.items()}
    if step in by_class:
        return by_class[step]
    raise ValueError(f"unknown Detector1 step {step!r} (known: {', '.join(STEP_CLASSES)})")


def _prepare(request: dict, workdir: Path, tag: str = "detector1") -> ChildJob:
    scratch = Path(tempfile.mkdtemp(prefix=f"jwst_{tag}_", dir=workdir))
    request_path = scratch / "request.json"
    report_path = scratch / "report.json"
    request["report"] = str(report_path)
    request_path.write_text(json.dumps(request, indent=1))
    return ChildJob(argv=[sys.executable, str(Path(__file__).resolve()), str(request_path)],
                    env=child_environment(scratch), report_path=report_path,
                    log_path=scratch / "jwst.log")


# --------------------------------------------------------------------------- the child side

def _forbid_network() -> None:
    """Make any connection attempt fail loudly: the oracle must never need a server."""
    import socket

    def refuse(self, address, *args, **kwargs):
        raise OSError(f"offline oracle: network connection to {address!r} attempted")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = lambda address, *a, **k: refuse(None, address)


class _StepClock:
    """A logging handler timing steps from stpipe's "running with args" / "done" lines."""

    def __init__(self):
        import logging

        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        clock = self

        class Handler(logging.Handler):
            def emit(self, record):
                if record.msg == "Step %s running with args %s.":
                    clock.started[record.args[0]] = time.perf_counter()
                elif record.msg == "Step %s done":
                    name = record.args[0]
                    if name in clock.started:
                        clock.seconds[name] = time.perf_counter() - clock.started[name]

        self.handler = Handler(level=logging.INFO)
        logging.getLogger("stpipe").addHandler(self.handler)
        logging.getLogger("stpipe").setLevel(logging.INFO)


def _file_versions(directory: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in directory.glob("*.fits")}


def _new_files(directory: Path, before: dict[Path, int], root: str) -> dict[str, Path]:
    """Files (re)written by the run, keyed by suffix (``<root>_dq_init.fits`` -> dq_init)."""
    found = {}
    for path in sorted(directory.glob(f"{root}_*.fits")):
        if before.get(path) != path.stat().st_mtime_ns:
            found[path.stem[len(root) + 1:]] = path
    return found


def _product_root(input_path: str) -> str:
    stem = Path(input_path).name.removesuffix(".fits")
    return stem.removesuffix("_uncal")


def _open_input(path: str):
    """The path itself, or an opened model when the file has no ``ASDF`` extension.

    stpipe reads a path's CRDS parameters from the ASDF extension (stdatamodels
    ``read_metadata``) and fails without one; a model built from the FITS keywords works.
    Ramps are opened as RampModel, as the steps would open the path themselves.
    """
    from astropy.io import fits

    with fits.open(path) as hdul:
        has_asdf = "ASDF" in hdul
        model_type = hdul[0].header.get("DATAMODL")
    if has_asdf:
        return path
    from stdatamodels.jwst import datamodels

    if model_type in ("Level1bModel", "RampModel"):
        return datamodels.RampModel(path)
    return datamodels.open(path)


def _child_main(request_path: str) -> None:
    request = json.loads(Path(request_path).read_text())
    if request.get("forbid_network", True):
        _forbid_network()
    clock = _StepClock()
    start = time.perf_counter()
    if request["kind"] == "pipeline":
        from jwst.pipeline import Detector1Pipeline as runner
    else:
        module_name, class_name = request["class"].rsplit(".", 1)
        runner = getattr(importlib.import_module(module_name), class_name)
    import_seconds = time.perf_counter() - start

    start = time.perf_counter()
    source = _open_input(request["input"])
    if request["kind"] == "pipeline":
        output_dir = Path(request["output_dir"])
        before = _file_versions(output_dir)
        runner.call(source, steps=request["steps"], output_dir=str(output_dir),
                    save_results=True)
        outputs = _new_files(output_dir, before, _product_root(request["input"]))
    else:
        result = runner.call(source, **request["params"])
        output = Path(request["output"])
        if isinstance(result, (tuple, list)):  # ramp_fit: (rate, rateints)
            rate, rateints = result
            ints_path = output.with_name(output.stem + "ints.fits")
            rate.save(str(output), overwrite=True)
            rateints.save(str(ints_path), overwrite=True)
            outputs = {"rate": output, "rateints": ints_path}
        else:
            result.save(str(output), overwrite=True)
            outputs = {request["step"]: output}
        # a stand-alone step logs under its class name; report it under its alias
        class_name = request["class"].rsplit(".", 1)[1]
        if class_name in clock.seconds:
            clock.seconds[request["step"]] = clock.seconds.pop(class_name)
    call_seconds = time.perf_counter() - start

    report = {"outputs": {k: str(v) for k, v in outputs.items()},
              "step_seconds": clock.seconds, "call_seconds": call_seconds,
              "import_seconds": import_seconds}
    Path(request["report"]).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    _child_main(sys.argv[1])
