"""The system check warns when the secrets key is not configured for production and refuses an
unreadable one."""

import pytest
from cryptography.fernet import Fernet

from django.core import checks

from apps.catalog.checks import secrets_key_check, secrets_key_source_check


@pytest.fixture
def no_key_in_environment(monkeypatch):
    monkeypatch.delenv("FLOWDECK_SECRETS_KEY", raising=False)


def test_warns_in_production_when_the_key_is_not_from_the_environment(settings, no_key_in_environment):
    settings.DEBUG = False
    for generated_or_derived in (Fernet.generate_key().decode(), ""):
        settings.FLOWDECK_SECRETS_KEY = generated_or_derived
        assert [m.id for m in secrets_key_source_check()] == ["flowdeck.W001"]


def test_quiet_in_debug(settings, no_key_in_environment):
    settings.DEBUG, settings.FLOWDECK_SECRETS_KEY = True, ""
    assert secrets_key_source_check() == []


def test_quiet_with_a_key_from_the_environment(settings, monkeypatch):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("FLOWDECK_SECRETS_KEY", key)
    settings.DEBUG, settings.FLOWDECK_SECRETS_KEY = False, key
    assert secrets_key_source_check() == []


def test_unreadable_key_is_an_error(settings):
    settings.FLOWDECK_SECRETS_KEY = "not-a-fernet-key"
    assert "flowdeck.E001" in [m.id for m in secrets_key_check()]


def test_source_warning_is_a_deployment_check_only(settings, no_key_in_environment):
    settings.DEBUG = False
    everyday = [m.id for m in checks.run_checks(include_deployment_checks=False)]
    deployment = [m.id for m in checks.run_checks(include_deployment_checks=True)]
    assert "flowdeck.W001" not in everyday and "flowdeck.W001" in deployment
