"""``webbcal info FILE``: extensions, shapes and dtypes of a DMS file plus its pipeline keywords.

Reads headers (and the small ASDF extension) only, never the data arrays, so it is instant
on a multi-GB uncal. Shapes are numpy order (slowest axis first), dtypes after BZERO
(a raw uncal SCI shows ``uint16``).
"""

from __future__ import annotations

import fnmatch

import click

from webbcal.errors import WebbcalError

EXPOSURE_KEYWORDS = ("DATAMODL", "INSTRUME", "DETECTOR", "FILTER", "PUPIL", "EXP_TYPE", "READPATT",
                     "SUBARRAY", "NINTS", "NGROUPS", "NFRAMES", "DATE-OBS", "TIME-OBS")
SOFTWARE_KEYWORDS = ("CAL_VER", "CAL_VCS", "DATE", "FILENAME")


def describe(path) -> list[str]:
    """The report as lines (the command only prints them)."""
    from webbcal.io.product import scan_file
    from webbcal.io import asdf_ext
    from webbcal.io.lazy import pseudo_unsigned_dtype

    spans, asdf_raw = scan_file(path)
    lines = [f"{path}"]
    lines.append(f"{'No.':>3}  {'EXTNAME':<12} {'VER':>3}  {'TYPE':<7} {'SHAPE':<24} DTYPE")
    for span in spans:
        if span.is_table:
            kind, shape = "TABLE", f"{span.shape[0] if span.shape else 0} rows"
            columns = [span.header.get(f"TTYPE{i}", "") for i in range(1, int(span.header.get("TFIELDS", 0)) + 1)]
            dtype = f"{len(columns)} columns"
        else:
            kind = "IMAGE" if span.index else "PRIMARY"
            shape = str(span.shape) if span.shape else "-"
            target = pseudo_unsigned_dtype(span)
            if not span.shape:
                dtype = "-"
            elif target is not None:
                dtype = target.name
            elif span.bscale != 1 or span.bzero != 0:
                dtype = f"{span.raw_dtype.newbyteorder('=').name} scaled"
            else:
                dtype = span.raw_dtype.newbyteorder("=").name
        lines.append(f"{span.index:>3}  {span.name:<12} {span.ver:>3}  {kind:<7} {shape:<24} {dtype}")

    header = spans[0].header
    lines.append("")
    lines.append("Exposure:")
    lines += _keyword_lines(header, EXPOSURE_KEYWORDS)
    units = [f"{s.name}{'' if s.ver == 1 else f',{s.ver}'}={s.header['BUNIT']}" for s in spans[1:] if "BUNIT" in s.header]
    if units:
        lines.append(f"  {'BUNIT':<9} {' '.join(units)}")
    steps = sorted(k for k in header if fnmatch.fnmatch(k, "S_*"))
    lines.append("Steps:")
    lines += _keyword_lines(header, steps) or ["  (none recorded)"]
    refs = sorted(k for k in header if fnmatch.fnmatch(k, "R_*"))
    lines.append("References:")
    lines += _keyword_lines(header, refs) or ["  (none recorded)"]
    lines.append("Software:")
    lines += _keyword_lines(header, SOFTWARE_KEYWORDS)

    if asdf_raw is not None:
        try:
            tree = asdf_ext.decode_tree(asdf_raw)
        except Exception as exc:
            raise WebbcalError(path, f"ASDF extension unreadable: {type(exc).__name__}") from None
        lines += _provenance_lines(tree)
        wcs = tree.get("meta", {}).get("wcs")
        if wcs is not None:
            frames = " -> ".join(str(name) for name in getattr(wcs, "available_frames", []))
            lines.append(f"WCS: gwcs ({frames})")
    return lines


def _keyword_lines(header, keys) -> list[str]:
    return [f"  {key:<9} {header[key]}" for key in keys if key in header]


def _provenance_lines(tree: dict) -> list[str]:
    records = tree.get("meta", {}).get("webbcal", {}).get("provenance", [])
    if not records:
        return []
    lines = ["Provenance:"]
    for record in records:
        software = record.get("software", {})
        lines.append(f"  {record.get('date', '?')} webbcal {software.get('version', '?')} ({software.get('vcs', '?')})")
        if record.get("inputs"):
            lines.append(f"    inputs: {', '.join(record['inputs'])}")
        for reftype, ref in record.get("references", {}).items():
            lines.append(f"    {reftype}: {ref.get('name')} sha256:{str(ref.get('sha256', ''))[:16]}")
        params = record.get("parameters") or {}
        if params:
            lines.append(f"    parameters: {len(params)} entries")
    return lines


@click.command("info")
@click.argument("file", type=click.Path(dir_okay=False))
def info(file):
    """Show extensions, shapes, dtypes and pipeline keywords of FILE."""
    for line in describe(file):
        click.echo(line)
