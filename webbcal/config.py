"""The workflow configuration, derived from the step declarations.

Every key of ``config/config.yaml`` is a :class:`~webbcal.steps.base.Param`: the few
workflow-level ones declared here, every step parameter declared by its step's ``SPEC``
(found through ``webbcal.steps.registry``). From that one declaration come

* :func:`default_config` -- the full default configuration (a nested dict),
* :func:`render_config`  -- the same as commented YAML (``webbcal config``),
* :func:`config_schema`  -- the JSON schema given to ``snakemake.utils.validate``,
* :func:`render_doc`     -- the Markdown table of ``config/README.md``,

so a parameter added to a step appears in all of them. ``config/`` holds the generated
files; regenerate them with ``webbcal config --write config/`` (a test checks they agree).

Layout::

    input_dir, asn_dir, output_dir, refs_dir     where things are
    simulate:  {preset, seed, filter, ...}       the built-in program, used when input_dir is empty
    report:    {previews}                        preview PNGs for `snakemake --report`
    detector1: {save_calibrated_ramp, steps: {<step>: {skip, <params...>, override_<reftype>}}}

Later stages (image2, image3, spec2) appear as soon as the registry lists them.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from webbcal.errors import WebbcalError
from webbcal.steps import registry
from webbcal.steps.base import Param, StepSpec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

WORKFLOW_PARAMS: tuple[Param, ...] = (
    Param("input_dir", str, "",
          "Directory of raw exposures (*_uncal.fits); empty: simulate the program described under 'simulate'."),
    Param("asn_dir", str, "",
          "Directory of association files (*_asn.json); empty: generate them from the exposures' headers."),
    Param("output_dir", str, "results", "Directory that receives every product, log and the simulated program."),
    Param("refs_dir", str, "",
          "Reference-file cache (directory with manifest.json); empty: the simulation's cache, else $WEBBCAL_REFS."),
)

# Simulator options left null take the preset's value (webbcal.simulate.program.PRESETS).
SIMULATOR_PRESETS = ("demo", "benchmark")
_SUBARRAYS = ("FULL", "SUB640", "SUB320", "SUB160", "SUB400P", "SUB64P")
_READPATTS = ("RAPID", "BRIGHT1", "BRIGHT2", "SHALLOW2", "SHALLOW4",
              "MEDIUM2", "MEDIUM8", "DEEP2", "DEEP8")
SIMULATE_PARAMS: tuple[Param, ...] = (
    Param("preset", str, "demo",
          "Simulated program to start from (demo: small and fast; benchmark: full frame, 8 dithers); "
          "options below override it.", choices=SIMULATOR_PRESETS),
    Param("seed", int, 1, "Random seed: the same seed and options give the same files.", minimum=0),
    Param("filter", str, None, "Imaging filter, e.g. F150W (null: the preset's).", nullable=True),
    Param("detector", str, None, "Detector, e.g. NRCA1; long-wave filters need NRCA5/NRCB5 (null: the preset's).",
          nullable=True),
    Param("subarray", str, None, "Detector subarray (null: the preset's).", nullable=True, choices=_SUBARRAYS),
    Param("readpatt", str, None, "Readout pattern (null: the preset's).", nullable=True, choices=_READPATTS),
    Param("ngroups", int, None, "Groups per integration (null: the preset's).", nullable=True, minimum=1),
    Param("nints", int, None, "Integrations per exposure (null: the preset's).", nullable=True, minimum=1),
    Param("ndither", int, None, "Dither positions of the imaging set (null: the preset's).", nullable=True, minimum=1),
    Param("nsources", int, None, "Sources in the sky scene (null: the preset's).", nullable=True, minimum=0),
    Param("wfss", bool, None, "Also simulate grism (WFSS) exposures (null: the preset's).", nullable=True),
)

REPORT_PARAMS: tuple[Param, ...] = (
    Param("previews", bool, True,
          "Draw a preview PNG beside every rate, cal, mosaic and x1d for `snakemake --report`."),
)

# Stage-level switches (besides ``steps``), per stage.
STAGE_PARAMS: dict[str, tuple[Param, ...]] = {
    "detector1": (
        Param("save_calibrated_ramp", bool, False,
              "Keep the calibrated ramp (before jump) as <exposure>_ramp.fits; jump and ramp_fit "
              "changes then refit from it."),
    ),
}

SKIP_HELP = "Skip this step (the product records it as SKIPPED)."


def override_param(reftype: str, optional: bool = False) -> Param:
    """``override_<reftype>``: a file used instead of the cache's selection (like stpipe)."""
    na = "use none" if optional else "skip the step"
    return Param(f"override_{reftype}", str, None,
                 f"{reftype.upper()} reference file to use instead of the cache's selection "
                 f"('N/A': {na}).", nullable=True)


def step_config_params(spec: StepSpec) -> tuple[Param, ...]:
    """Every key of a step's block: ``skip``, its parameters, its reference overrides."""
    skip = Param("skip", bool, spec.skip, SKIP_HELP)
    optional = getattr(spec, "optional_reftypes", ())
    return (skip, *spec.params, *(override_param(r, r in optional) for r in spec.reftypes))


def stages() -> tuple[str, ...]:
    return tuple(registry.STAGES)


# --------------------------------------------------------------------------- the tree
# One walk over the declarations feeds the defaults, the YAML, the schema and the doc.

@dataclass(frozen=True)
class Section:
    """A mapping of the configuration: its key, one line of help, its Params and Sections."""

    name: str
    help: str
    children: list


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def config_tree(stage: str | None = None) -> list:
    """The declarations as a list of Params and Sections; ``stage``: that stage only."""
    specs = registry.all_specs()
    stage_sections = []
    for name in stages():
        steps = [Section(step, _first_line(spec.doc), list(step_config_params(spec)))
                 for step, spec in specs[name].items()]
        steps_section = Section("steps", f"The {name} steps, in the order they run.", steps)
        children = [*STAGE_PARAMS.get(name, ()), steps_section]
        stage_sections.append(Section(name, f"Stage {name}.", children))
    if stage is not None:
        if stage not in stages():
            raise WebbcalError(None, f"unknown stage {stage!r} (known: {', '.join(stages())})")
        return [s for s in stage_sections if s.name == stage]
    simulate = Section("simulate", "The built-in simulated program (used when input_dir is empty).",
                       list(SIMULATE_PARAMS))
    report = Section("report", "Previews for the Snakemake report.", list(REPORT_PARAMS))
    return [*WORKFLOW_PARAMS, simulate, report, *stage_sections]


def _defaults(nodes: list) -> dict:
    return {node.name: node.default if isinstance(node, Param) else _defaults(node.children)
            for node in nodes}


def default_config(stage: str | None = None) -> dict:
    """The full default configuration (or one stage's section of it)."""
    return _defaults(config_tree(stage))


def _schema(nodes: list, description: str = "") -> dict:
    properties = {node.name: node.json_schema() if isinstance(node, Param)
                  else _schema(node.children, node.help)
                  for node in nodes}
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    # default {} lets snakemake.utils.validate fill a missing section from its properties
    schema.update({"default": {}, "additionalProperties": False, "properties": properties})
    return schema


def config_schema() -> dict:
    """JSON schema of the whole configuration; unknown keys are rejected everywhere."""
    body = _schema(config_tree())
    body.pop("default")
    return {"$schema": JSON_SCHEMA_DIALECT,
            "description": "webbcal workflow configuration (generated by `webbcal config --write config/`).",
            **body}


# --------------------------------------------------------------------------- rendering

def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def _yaml_lines(nodes: list, indent: int = 0) -> Iterator[str]:
    pad = "  " * indent
    for node in nodes:
        if isinstance(node, Param):
            yield f"{pad}# {node.help}"
            yield f"{pad}{node.name}: {_scalar(node.default)}"
        else:
            if node.help:
                yield f"{pad}# {node.help}"
            yield f"{pad}{node.name}:"
            yield from _yaml_lines(node.children, indent + 1)


CONFIG_HEADER = """\
# webbcal configuration: every parameter, with its default and one line of help.
# Generated from the step declarations by `webbcal config --write config/`; do not edit
# this copy. To change a value, pass a file with just the keys you change:
#   snakemake --cores 2 --configfile my.yaml
"""


def render_config(stage: str | None = None) -> str:
    """The default configuration as commented YAML (what ``webbcal config`` prints)."""
    lines = list(_yaml_lines(config_tree(stage)))
    return CONFIG_HEADER + "\n" + "\n".join(lines) + "\n"


def render_schema() -> str:
    return ("# Generated by `webbcal config --write config/` from the step declarations.\n"
            + yaml.safe_dump(config_schema(), sort_keys=False, width=100))


def _markdown_text(text: str) -> str:
    """Plain help text safe inside a Markdown table cell."""
    for char, escaped in (("|", "/"), ("*", "\\*"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, escaped)
    return text


def _doc_rows(nodes: list, prefix: str = "") -> Iterator[str]:
    for node in nodes:
        if isinstance(node, Param):
            p = node
            kind = p.type.__name__ + (" or null" if p.nullable else "")
            if p.choices:
                kind += ": " + ", ".join(p.choices)
            default = _scalar(p.default).replace("|", "\\|")
            yield f"| `{prefix}{p.name}` | {kind} | `{default}` | {_markdown_text(p.help)} |"
        else:
            yield from _doc_rows(node.children, f"{prefix}{node.name}.")


def render_doc() -> str:
    """``config/README.md``: how to configure, and every parameter in a table."""
    rows = "\n".join(_doc_rows(config_tree()))
    return f"""\
# Configuration

`config.yaml` holds every parameter of the workflow with its default; `schema.yaml` is the
JSON schema Snakemake validates the configuration against (unknown keys and wrong types
stop the workflow before any job runs). Both files and this page are generated from the
step declarations (`webbcal/steps/<step>.py`, `SPEC`):

    webbcal config --write config/      # regenerate config.yaml, schema.yaml, README.md
    webbcal config --stage detector1    # print one stage's section

Give only what you change in your own file, e.g. `my.yaml`:

```yaml
input_dir: data/uncal
detector1:
  steps:
    jump:
      rejection_threshold: 5.0
```

and run `snakemake --cores 2 --configfile my.yaml`. A changed parameter, or a replaced
reference file, reruns exactly the products that depend on it.

Every step has `skip` and one `override_<reftype>` per reference type it reads: a file
used instead of the cache's selection, as the official pipeline's `override_` parameters
(`N/A` skips the step, or for a reference the step can do without, uses none).

| key | type | default | meaning |
|---|---|---|---|
{rows}
"""


# --------------------------------------------------------------------------- loading

def _type_names(expected) -> str:
    names = expected if isinstance(expected, list) else [expected]
    return " or ".join(names)


def _describe(error) -> tuple[str, str]:
    """(dotted key, one-line problem) of a jsonschema ValidationError."""
    path = [str(p) for p in error.absolute_path]
    where = ".".join(path)
    kind = error.validator
    if kind == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        unknown = sorted(str(k) for k in error.instance if k not in known)
        key = ".".join(path + [unknown[0]])
        return key, f"unknown key (known: {', '.join(known)})"
    if kind == "type":
        return where, f"expected {_type_names(error.validator_value)}, got {error.instance!r}"
    if kind == "enum":
        allowed = ", ".join("null" if v is None else str(v) for v in error.validator_value)
        return where, f"expected one of {allowed}, got {error.instance!r}"
    if kind == "minimum":
        return where, f"must be >= {error.validator_value}, got {error.instance!r}"
    return where, error.message


def check_config(data: Any, source: str | Path | None = "config") -> None:
    """Raise ``WebbcalError(source, "<key>: <problem>")`` for the first bad key of ``data``."""
    from jsonschema import Draft202012Validator

    if not isinstance(data, dict):
        raise WebbcalError(source, f"expected a mapping of configuration keys, got {type(data).__name__}")
    errors = sorted(Draft202012Validator(config_schema()).iter_errors(data),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        where, problem = _describe(errors[0])
        raise WebbcalError(source, f"{where}: {problem}" if where else problem)


def merge(base: dict, update: dict) -> dict:
    """``base`` updated recursively with ``update`` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_config(data: dict | None, source: str | Path | None = "config") -> dict:
    """Validate a (possibly partial) configuration and fill in every default."""
    data = {} if data is None else data
    check_config(data, source)
    return merge(default_config(), data)


def load_config(path: str | Path) -> dict:
    """Read, validate and complete a configuration file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WebbcalError(path, f"cannot read configuration: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WebbcalError(path, f"not valid YAML: {exc}") from None
    return resolve_config(data, path)


def step_params(config: dict, stage: str, step: str) -> dict[str, Any]:
    """Resolved parameters of one step: ``skip``, its parameters, ``override_<reftype>``."""
    if step not in registry.STAGES.get(stage, ()):
        raise WebbcalError(None, f"step {step!r} is not part of stage {stage!r}")
    spec = registry.stage_spec(stage, step)
    given = ((config.get(stage) or {}).get("steps") or {}).get(step) or {}
    values = {p.name: p.default for p in step_config_params(spec)}
    values.update(given)
    return values


def stage_params(config: dict, stage: str) -> dict[str, dict[str, Any]]:
    """What a stage's products depend on, per step: a skipped step is just ``{"skip": True}``,
    so changing the parameters of a step that does not run reruns nothing."""
    out = {}
    for step in registry.STAGES[stage]:
        values = step_params(config, stage, step)
        out[step] = {"skip": True} if values["skip"] else values
    return out


# --------------------------------------------------------------------------- rerun triggers

def planned_references(uncal_path: str | Path, refs_dir: str, steps: dict[str, dict],
                       stage: str | None = None) -> list[str]:
    """Reference files a stage run of this exposure will read, as the cache chooses them.

    ``steps`` is :func:`stage_params` of ``stage`` (needed where step names repeat across
    stages: spec2's flat_field is not image2's). Given to the rule as inputs, they make Snakemake
    rerun exactly the exposures whose references were replaced, or whose best match
    changed (a new file in the cache). Planning only: an exposure header or a cache that
    cannot be read here, or a reference not found, adds nothing, and the job itself then
    reports the problem (so tiny placeholder exposures still plan).
    """
    from webbcal.refs.load import SKIP_VALUES
    from webbcal.refs.selection import choose

    chosen: set[str] = set()
    to_select: set[str] = set()
    for step, values in steps.items():
        if values.get("skip"):
            continue
        spec = registry.stage_spec(stage, step) if stage else registry.spec(step)
        for reftype in spec.reftypes:
            override = values.get(f"override_{reftype}")
            if not override:
                to_select.add(reftype)
            elif str(override).strip().upper() not in SKIP_VALUES:
                chosen.add(str(override))
    if to_select:
        try:
            header = exposure_header(uncal_path)
            cache, entries = _planning_entries(refs_dir)
        except (OSError, ValueError, WebbcalError):
            return sorted(chosen)
        for reftype in sorted(to_select):
            try:
                chosen.add(str(cache.root / choose(entries, reftype, header).file))
            except WebbcalError:
                continue
    return sorted(chosen)


# Planning reads every exposure's header and the cache manifest once per stage and
# exposure; with 1000 exposures that was over half of `snakemake -n`. Both are read
# once per file version (path, mtime, size) instead.
_HEADERS: dict[tuple, Any] = {}
_ENTRIES: dict[tuple, list] = {}


def exposure_header(path: str | Path):
    """The primary header of ``path``, read once per file version. Shared: do not modify."""
    from astropy.io import fits

    stat = os.stat(path)
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _HEADERS:
        _HEADERS[key] = fits.getheader(path, 0)
    return _HEADERS[key]


def _planning_entries(refs_dir: str):
    """The reference cache of ``refs_dir`` and its entries, re-read only when the manifest changes."""
    from webbcal.refs import RefCache

    cache = RefCache.from_config(refs_dir or None)
    try:
        stat = cache.manifest_path.stat()
        key = (str(cache.root), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (str(cache.root), None, None)
    if key not in _ENTRIES:
        _ENTRIES[key] = cache.entries()
    return cache, _ENTRIES[key]
