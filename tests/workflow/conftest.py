"""Fixtures of the workflow tests: a small fake step registry.

The real step modules are written in parallel; the configuration machinery only needs
``SPEC``s, so these tests run on three fake steps covering every parameter kind.
"""

from __future__ import annotations

import types

import pytest

from webbcal.steps import registry
from webbcal.steps.base import Param, StepSpec

FAKE_SPECS = {
    "dq_init": StepSpec("dq_init", "detector1", "S_DQINIT", reftypes=("mask",),
                        doc="Copy the bad-pixel mask into the pixel DQ."),
    "ipc": StepSpec("ipc", "detector1", "S_IPC", reftypes=("ipc",), skip=True),
    "jump": StepSpec(
        "jump", "detector1", "S_JUMP", reftypes=("gain", "readnoise"),
        params=(
            Param("rejection_threshold", float, 4.0, "Sigma threshold for a jump."),
            Param("maximum_cores", str, "1", "Cores to use.", choices=("1", "quarter", "half", "all")),
            Param("flag_4_neighbors", bool, True, "Flag the 4 neighbours of a jump."),
            Param("min_sat_area", int, 1, "Smallest saturated area of a snowball.", minimum=0),
            Param("dark_output", str, None, "Optional file name.", nullable=True),
        )),
}


@pytest.fixture
def fake_registry(monkeypatch):
    """Replace the registry's detector1 steps by FAKE_SPECS."""
    monkeypatch.setattr(registry, "STAGES", {"detector1": tuple(FAKE_SPECS)})

    def step_module(name):
        if name not in FAKE_SPECS:
            raise KeyError(f"unknown step {name!r}")
        return types.SimpleNamespace(SPEC=FAKE_SPECS[name])

    monkeypatch.setattr(registry, "step_module", step_module)
    return FAKE_SPECS
