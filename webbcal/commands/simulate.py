"""``webbcal simulate OUTDIR``: simulate a dithered NIRCam imaging program.

Writes raw exposures (``uncal/``), the matching reference cache (``refs/``), official
associations (``asn/``) and the truth (``truth/``); see ``webbcal.simulate.program``.
"""

from __future__ import annotations

import logging

import click

from webbcal.simulate.readout import READ_PATTERNS, SUBARRAYS

log = logging.getLogger("webbcal.commands.simulate")


@click.command("simulate")
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--preset", type=click.Choice(["demo", "benchmark"]), default="demo", show_default=True,
              help="demo: SUB640, 6 groups, 4 dithers; benchmark: FULL, BRIGHT2, 10 groups, 8 dithers.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed (fully deterministic).")
@click.option("--detector", type=str, default=None, help="NRCA1..NRCB4, NRCALONG, NRCBLONG.")
@click.option("--filter", "filter_", type=str, default=None, help="Filter, e.g. F150W, F200W, F444W.")
@click.option("--subarray", type=click.Choice(sorted(SUBARRAYS), case_sensitive=False), default=None)
@click.option("--readpatt", type=click.Choice(list(READ_PATTERNS), case_sensitive=False), default=None)
@click.option("--ngroups", type=int, default=None)
@click.option("--nints", type=int, default=None)
@click.option("--ndither", type=int, default=None, help="Number of exposures (primary x sub-pixel).")
@click.option("--nsources", type=int, default=None, help="Sources in the scene (default: from density).")
@click.option("--source-density", type=float, default=None, help="Sources per arcmin^2.")
@click.option("--zeroframe/--no-zeroframe", default=None, help="Downlink frame zero (ZEROFRAME).")
@click.option("--ipc/--no-ipc", default=None, help="Simulate inter-pixel capacitance.")
@click.option("--persistence/--no-persistence", default=None, help="Toy persistence between exposures.")
@click.option("--wfss/--no-wfss", default=None, help="Also simulate WFSS exposures (webbcal.simulate.wfss).")
@click.option("--references/--no-references", "write_references", default=True, show_default=True,
              help="Write the reference cache (skip when re-simulating exposures only).")
@click.pass_context
def simulate(ctx, outdir, preset, seed, detector, filter_, subarray, readpatt, ngroups, nints, ndither,
             nsources, source_density, zeroframe, ipc, persistence, wfss, write_references):
    """Simulate a NIRCam program into OUTDIR: uncal/, refs/, asn/, truth/."""
    from webbcal.cli import run_guarded
    from webbcal.simulate.program import settings_for, simulate_program

    debug = bool((ctx.obj or {}).get("debug"))

    def run():
        settings = settings_for(
            preset, detector=detector, filter=filter_, subarray=subarray and subarray.upper(),
            readpatt=readpatt and readpatt.upper(), ngroups=ngroups, nints=nints, ndither=ndither,
            nsources=nsources, source_density=source_density, zeroframe=zeroframe, ipc=ipc,
            persistence=persistence, wfss=wfss, write_references=write_references)
        log.info("simulating %s %s %s %s x%d groups, %d exposure(s) into %s", settings.detector,
                 settings.filter, settings.subarray, settings.readpatt, settings.ngroups,
                 settings.ndither, outdir)
        summary = simulate_program(outdir, settings, seed)
        click.echo(f"{len(summary['exposures'])} exposures, {len(summary['references'])} references, "
                   f"{len(summary['associations'])} associations in {outdir} ({summary['seconds']:.1f} s)")

    run_guarded(run, debug=debug)
