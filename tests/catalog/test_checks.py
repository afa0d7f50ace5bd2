"""The system check warns about secrets keyed from SECRET_KEY and refuses an unreadable key."""

from apps.catalog.checks import secrets_key_check


def test_warns_when_no_secrets_key_in_production(settings):
    settings.FLOWDECK_SECRETS_KEY, settings.DEBUG = "", False
    assert [m.id for m in secrets_key_check()] == ["flowdeck.W001"]


def test_quiet_in_debug_or_with_a_key(settings):
    settings.FLOWDECK_SECRETS_KEY, settings.DEBUG = "", True
    assert secrets_key_check() == []
    settings.FLOWDECK_SECRETS_KEY, settings.DEBUG = "VGhpcyBpcyBhIHRlc3Qga2V5IG9mIDMyIGJ5dGVzISE=", False
    assert secrets_key_check() == []


def test_unreadable_key_is_an_error(settings):
    settings.FLOWDECK_SECRETS_KEY = "not-a-fernet-key"
    assert [m.id for m in secrets_key_check()] == ["flowdeck.E001"]
