"""System checks for the audit chain's key.

audit.W001 (`manage.py check --deploy`): FLOWDECK_AUDIT_KEYS does not come from the environment,
so the key signing the chain lives in var/audit_key, beside the database: whoever can read that
folder can rewrite the chain and sign it again, and losing it leaves the chain unverifiable.
A deployment check, so the embedded default's everyday commands stay quiet.
"""

from django.conf import settings
from django.core import checks

from apps.env import env_str


@checks.register(checks.Tags.security, deploy=True)
def audit_key_source_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.DEBUG or env_str("FLOWDECK_AUDIT_KEYS"):
        return []
    return [checks.Warning(
        "FLOWDECK_AUDIT_KEYS is not set in the environment: the audit chain is signed with a key generated "
        "into var/audit_key, next to the database, so someone who can write both can rewrite the chain "
        "undetected, and losing the file leaves the chain unverifiable.",
        hint='Set FLOWDECK_AUDIT_KEYS from your secret store to "id:key" (the key at least 32 random '
             "characters); to rotate, put the new id:key first and keep the old ones after it, comma-separated.",
        id="audit.W001",
    )]
