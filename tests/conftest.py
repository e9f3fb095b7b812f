"""Keep the test run's disk footprint bounded.

Simulated programs carry full-frame reference files, so a module- or session-scoped
fixture can leave a few hundred MB in its ``tmp_path_factory.mktemp`` directories. pytest
only removes those at the end of the session (``tmp_path_retention_policy`` in
pyproject.toml handles function-scoped ``tmp_path``), so over a whole run they used to add
up to ~8 GB. Here each broader-scoped fixture's directories are removed as soon as that
fixture is torn down (end of its module for module scope), which keeps the peak near the
largest module's data plus the session fixtures'.
"""

from __future__ import annotations

import shutil

import pytest

_owner_stack: list = []  # fixture definitions being set up, innermost last
_made_by: dict[int, list] = {}  # id(fixturedef) -> directories its mktemp calls made


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    _owner_stack.append(fixturedef)
    try:
        yield
    finally:
        _owner_stack.pop()


def pytest_fixture_post_finalizer(fixturedef, request):
    for path in _made_by.pop(id(fixturedef), []):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _remove_fixture_directories_at_teardown(tmp_path_factory):
    original = tmp_path_factory.mktemp

    def mktemp(basename, numbered=True):
        path = original(basename, numbered=numbered)
        owner = _owner_stack[-1] if _owner_stack else None
        if owner is not None and owner.scope != "function":
            _made_by.setdefault(id(owner), []).append(path)
        return path

    tmp_path_factory.mktemp = mktemp
    yield
    tmp_path_factory.mktemp = original
