"""The report's "run" page: every stage's parameters and the software that ran them.

Snakemake's report shows results and rule code but neither the configuration values
nor the package versions; this writes them as one self-contained HTML page that the
report embeds (``rules/report.smk``). Run as
``python -m webbcal.preview.run_info OUT.html --parameters JSON``.
"""

from __future__ import annotations

import html
import json
import platform
from importlib import metadata
from pathlib import Path

import click

from webbcal.commands.rule_script import json_object

# What a calibrated product depends on, beyond webbcal itself.
SOFTWARE = ("webbcal", "numpy", "scipy", "astropy", "asdf", "asdf-astropy", "gwcs", "photutils",
            "drizzle", "matplotlib", "snakemake")


def software_versions(packages=SOFTWARE) -> dict[str, str]:
    """Installed version of each package ('not installed' when absent), and Python's."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def parameter_rows(parameters: dict) -> list[tuple[str, str, str, str]]:
    """(stage, step, parameter, value) for every parameter, in configuration order."""
    rows = []
    for stage, steps in parameters.items():
        for step, values in steps.items():
            for name, value in values.items():
                rows.append((stage, step, name, json.dumps(value)))
    return rows


def _table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = ("body{font-family:sans-serif;font-size:13px;margin:1em}"
         "table{border-collapse:collapse;margin-bottom:2em}"
         "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
         "th{background:#eee}")


def render_run_info(parameters: dict, versions: dict[str, str]) -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>webbcal run</title>"
            f"<style>{STYLE}</style></head><body>"
            "<h2>Software</h2>" + _table(("package", "version"), sorted(versions.items()))
            + "<h2>Parameters</h2>"
            + _table(("stage", "step", "parameter", "value"), parameter_rows(parameters))
            + "</body></html>")


def write_run_info(path, parameters: dict, versions: dict[str, str] | None = None) -> Path:
    from webbcal.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_run_info(parameters, versions or software_versions()))
    return path


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--parameters", default="{}", callback=json_object,
              help="JSON {stage: {step: {param: value}}}.")
def main(output, parameters):
    """Write the run page (parameters, software versions) to OUTPUT."""
    write_run_info(output, parameters)


if __name__ == "__main__":
    from webbcal.cli import run_guarded

    run_guarded(main.main, prog_name="run_info")
