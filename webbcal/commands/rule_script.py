"""What every ``scripts/*.py`` shares: JSON options and running as a rule's script.

A rule script is a click command plus ``arguments_from_rule(job)``, the equivalent
command line of a Snakemake job. Run by a rule's ``script:`` directive, it writes its
stderr into the rule's log; run by hand, it parses ``sys.argv``. Either way a
``WebbcalError`` becomes one line and a non-zero exit (``webbcal.cli.run_guarded``).
"""

from __future__ import annotations

import contextlib
import json
import logging

import click

from webbcal.cli import run_guarded


def json_object(ctx, param, value):
    """click callback: a JSON object option (step parameters, simulator settings)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("expected a JSON object")
    return parsed


def run_rule_script(command: click.Command, arguments_from_rule, namespace: dict, prog_name: str,
                    argv: list[str] | None = None):
    """Run ``command`` from a rule (``snakemake`` in the script's globals) or the shell
    (``argv``, default ``sys.argv``)."""
    log_format = "%(asctime)s %(name)s %(levelname)s: %(message)s"
    job = namespace.get("snakemake")
    if job is None:
        logging.basicConfig(level=logging.INFO, format=log_format)
        return run_guarded(command.main, args=argv, prog_name=prog_name)
    with open(job.log[0], "w") as log, contextlib.redirect_stderr(log):
        # The handler is bound to the stream it is made with: make it after the redirect
        # (force: replace any handler an import made), else the rule's log stays empty.
        logging.basicConfig(level=logging.INFO, format=log_format, stream=log, force=True)
        return run_guarded(command.main, args=arguments_from_rule(job), prog_name=prog_name)
