"""Stages: each chains its steps, reads its inputs and writes its products."""
