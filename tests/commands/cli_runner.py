"""Running ``webbcal`` in-process, with the result shaped like a finished process."""

from __future__ import annotations

import contextlib
import io
import subprocess


def webbcal(*args) -> subprocess.CompletedProcess:
    """``webbcal ARGS`` in-process: returncode, stdout and stderr as a subprocess gives them."""
    from webbcal.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
