"""``webbcal config``: the full default configuration, one comment per parameter.

What ``collect_pipeline_cfgs`` gave users of the official pipeline, derived from the
step declarations: print it, or regenerate the workflow's ``config/`` directory.
"""

from __future__ import annotations

from pathlib import Path

import click

from webbcal import config as wconfig
from webbcal.io.atomic import atomic_write_text

GENERATED = {
    "config.yaml": wconfig.render_config,
    "schema.yaml": wconfig.render_schema,
    "README.md": wconfig.render_doc,
}


def write_config_dir(directory: Path) -> list[Path]:
    """Write config.yaml, schema.yaml and README.md into ``directory`` (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in GENERATED.items():
        written.append(atomic_write_text(directory / name, render()))
    return written


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--stage", type=click.Choice(wconfig.stages()), default=None,
              help="Print only this stage's section.")
@click.option("--write", "write_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write config.yaml, schema.yaml and README.md into this directory "
                   "(regenerates the workflow's config/).")
@click.option("--doc", is_flag=True, help="Print the Markdown table of every parameter (config/README.md).")
def config(stage, write_dir, doc):
    """Print the full default configuration, one comment per parameter."""
    if write_dir is not None:
        for path in write_config_dir(write_dir):
            click.echo(f"wrote {path}")
        return
    click.echo(wconfig.render_doc() if doc else wconfig.render_config(stage), nl=False)
