"""`.test/config.yaml`, the small whole-DAG run: valid, and portable (no absolute paths).
It is run for real by the slow tests in test_small_program.py."""

from pathlib import Path

import yaml

from webbcal import config as wconfig

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = ROOT / ".test" / "config.yaml"


def strings_in(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)
    elif isinstance(node, str):
        yield node


def test_the_test_config_is_valid_small_and_has_no_absolute_path():
    given = yaml.safe_load(TEST_CONFIG.read_text())
    wconfig.check_config(given, TEST_CONFIG)
    assert not [s for s in strings_in(given) if s.startswith(("/", "~")) or ":\\" in s]
    merged = wconfig.load_config(TEST_CONFIG)
    assert merged["input_dir"] == ""  # the built-in simulation: no data to download
    assert merged["simulate"]["ndither"] <= 2 and merged["simulate"]["ngroups"] <= 4
