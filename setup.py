"""Build of the optional C extension; all project metadata is in pyproject.toml."""

import sys

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-add, so the float results equal drizzle's
# (its wheels are built for baseline x86-64, which has no FMA). No -ffast-math.
if sys.platform == "win32":
    compile_args = ["/fp:precise"]
else:
    compile_args = ["-O3", "-ffp-contract=off", "-fno-fast-math"]

setup(
    ext_modules=[
        Extension(
            "webbcal.resample._square",
            ["webbcal/resample/_square.c"],
            extra_compile_args=compile_args,
            # without a compiler the install still succeeds; square.available() is then False
            optional=True,
        )
    ]
)
