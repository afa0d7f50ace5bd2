"""The keys that sign the audit chain, read from FLOWDECK_AUDIT_KEYS ("id:key,id:key") at start-up.

The first key signs new events and exported chain heads; the ones after it only verify what they
signed before a rotation. The keys live outside the database, so someone who can write the
database alone cannot compute a valid event HMAC. Settings call `parse_audit_keys`, so a bad
value stops every process at start-up instead of failing at the first audit event.
"""

import re

from django.core.exceptions import ImproperlyConfigured

_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,16}")
# 32 characters of token_urlsafe carry 192 bits: well beyond guessing.
MIN_KEY_LENGTH = 32
_FIX = ('Write it as "id:key,id:key", the signing key first, each key at least '
        f'{MIN_KEY_LENGTH} random characters, e.g. python -c "import secrets; print(secrets.token_urlsafe(32))".')


def parse_audit_keys(raw: str) -> dict[str, bytes]:
    """Key id -> key, in the order given (the first one signs)."""
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(raw.split(","), start=1):
        key_id, colon, key = entry.strip().partition(":")
        if not colon or not _KEY_ID.fullmatch(key_id):
            raise ImproperlyConfigured(
                f"FLOWDECK_AUDIT_KEYS entry {position} does not start with a key id (1-16 letters, digits, "
                f"'_', '.' or '-') and a colon. {_FIX}")
        if key_id in keys:
            raise ImproperlyConfigured(f"FLOWDECK_AUDIT_KEYS names key id {key_id!r} twice. {_FIX}")
        if len(key) < MIN_KEY_LENGTH:
            raise ImproperlyConfigured(
                f"FLOWDECK_AUDIT_KEYS key {key_id!r} is {len(key)} characters long, fewer than "
                f"{MIN_KEY_LENGTH}. {_FIX}")
        keys[key_id] = key.encode()
    return keys
