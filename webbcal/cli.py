"""The ``webbcal`` command: a click group whose sub-commands live in ``webbcal.commands``.

Sub-commands are imported only when called, so ``webbcal --help`` stays fast and a
broken optional module cannot stop the others.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from webbcal import __version__
from webbcal.errors import WebbcalError

# name -> "module:attribute" of a click command or group
SUBCOMMANDS = {
    "info": ("webbcal.commands.info:info", "Show extensions, shapes, dtypes and pipeline keywords of a file."),
    "simulate": ("webbcal.commands.simulate:simulate", "Simulate a NIRCam program: raw exposures, references, associations, truth."),
    "refs": ("webbcal.commands.refs:refs", "Inspect the reference-file cache and its selection."),
    "detector1": ("webbcal.commands.detector1:detector1", "Stage 1: uncal -> rate and rateints."),
    "image2": ("webbcal.commands.image2:image2", "Stage 2 imaging: rate (or image2 asn) -> cal and single-exposure i2d."),
    "image3": ("webbcal.commands.image3:image3", "Stage 3 imaging: image3 asn of cal files -> mosaic (i2d), catalog, segm, crf."),
    "spec2": ("webbcal.commands.spec2:spec2", "Stage 2 WFSS: grism rate (or spec2 asn) + direct-image catalog -> cal and x1d."),
    "preview": ("webbcal.commands.preview:preview", "Draw a product (rate, cal, i2d, WFSS cal, x1d) into a small PNG."),
    "step": ("webbcal.commands.step:step", "Run one calibration step alone (like strun)."),
    "asn": ("webbcal.commands.asn:asn", "Generate and inspect association files (from exposures or an official pool)."),
    "config": ("webbcal.commands.config:config", "Print the full default configuration, one comment per parameter."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx, name):
        if name not in SUBCOMMANDS:
            return None
        target, _ = SUBCOMMANDS[name]
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="webbcal")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def cli(ctx, debug, verbose):
    """webbcal: the JWST calibration pipeline as a reproducible workflow."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def run_guarded(func, *args, debug: bool = False, **kwargs):
    """Call ``func``; turn a WebbcalError (or OSError) into one stderr line and exit 2."""
    try:
        return func(*args, **kwargs)
    except WebbcalError as exc:
        if debug:
            raise
        click.echo(f"webbcal: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        if debug:
            raise
        where = getattr(exc, "filename", None)
        reason = exc.strerror or str(exc)
        click.echo(f"webbcal: error: {where + ': ' if where else ''}{reason}", err=True)
        sys.exit(2)


def main(argv=None):
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    return run_guarded(cli.main, args=argv, prog_name="webbcal", standalone_mode=True, debug=debug)


if __name__ == "__main__":
    main()
