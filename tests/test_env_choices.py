"""Settings that take one of a few values are read by one helper (`env_choice`): a wrong value
stops start-up with a message naming the variable and its choices."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, value, choices", [
    ("FLOWDECK_QUERY_PRECISION", "int4", "int8 or float32"),
    ("LOG_LEVEL", "loud", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ("LOG_FORMAT", "xml", "json or console"),
])
def test_a_wrong_choice_stops_start_up_naming_the_variable(name, value, choices):
    checked = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, name: value}, timeout=120)
    assert checked.returncode != 0
    assert f"{name}={value!r} must be {choices}." in checked.stderr


def test_a_level_is_read_in_any_case_and_a_missing_one_is_the_default(monkeypatch):
    from apps.env import env_choice

    monkeypatch.setenv("FLOWDECK_TEST_CHOICE", " debug ")
    assert env_choice("FLOWDECK_TEST_CHOICE", "INFO", ("DEBUG", "INFO"), upper=True) == "DEBUG"
    monkeypatch.delenv("FLOWDECK_TEST_CHOICE")
    assert env_choice("FLOWDECK_TEST_CHOICE", "INFO", ("DEBUG", "INFO"), upper=True) == "INFO"
