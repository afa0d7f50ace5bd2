"""System checks for the catalog's configuration (ids flowdeck.E001, flowdeck.W001)."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register(checks.Tags.security)
def secrets_key_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from apps.catalog import secrets

    raw = settings.FLOWDECK_SECRETS_KEY
    if raw:
        try:
            secrets.build_fernet(raw, settings.SECRET_KEY)
        except ImproperlyConfigured as exc:
            return [checks.Error(str(exc), id="flowdeck.E001")]
        return []
    if settings.DEBUG:
        return []
    return [checks.Warning(
        "FLOWDECK_SECRETS_KEY is not set: connection secrets are encrypted with a key derived from "
        "SECRET_KEY, so changing SECRET_KEY makes them unreadable.",
        hint="Set FLOWDECK_SECRETS_KEY to a Fernet key (Fernet.generate_key()); list the old key after the "
             "new one, separated by a comma, while rotating.",
        id="flowdeck.W001",
    )]
