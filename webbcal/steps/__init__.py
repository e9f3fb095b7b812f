"""Calibration steps: one module per step, each with ``SPEC`` and a pure array function."""
