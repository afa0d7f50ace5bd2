"""Encryption at rest for connection secrets (passwords, tokens).

Fernet (AES-128-CBC with HMAC-SHA256) keyed from `settings.FLOWDECK_SECRETS_KEY`: one Fernet
key, or several separated by commas for rotation (the first encrypts, every one decrypts).
Settings fill it from the environment or from a key generated once into var/; should it still
be empty, the key is derived from SECRET_KEY with HKDF, which ties the secrets to SECRET_KEY.
The system check (apps.catalog.checks) warns in production when the key is not from the environment.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_HKDF_INFO = b"flowdeck connection secrets v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


def configured_keys(raw: str) -> list[str]:
    return [key.strip() for key in raw.split(",") if key.strip()]


def derived_key(secret_key: str) -> bytes:
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(material)


@lru_cache(maxsize=4)
def build_fernet(secrets_key: str, secret_key: str) -> MultiFernet:
    keys = configured_keys(secrets_key)
    if not keys:
        return MultiFernet([Fernet(derived_key(secret_key))])
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "FLOWDECK_SECRETS_KEY must be Fernet keys separated by commas; make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
        ) from None


def _current() -> MultiFernet:
    return build_fernet(settings.FLOWDECK_SECRETS_KEY, settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "This secret was encrypted with another key: restore the old FLOWDECK_SECRETS_KEY "
            "(or SECRET_KEY) or set the secret again."
        ) from None
