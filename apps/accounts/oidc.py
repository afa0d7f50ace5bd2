"""Sign-in: local passwords, and single sign-on with OpenID Connect through mozilla-django-oidc.

The library does the protocol (authorization code with PKCE, state, nonce, the ID token's
signature against the provider's keys). Here: the provider's endpoints come from its discovery
document, the ID token must name our issuer and client, and who the person is and which roles
their groups give them is decided by `services.sign_in_with_provider`.
"""

from functools import lru_cache

import requests
import structlog
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.http import Http404
from django.shortcuts import redirect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from apps.accounts import group_map, services

log = structlog.get_logger(__name__)

# mozilla-django-oidc's endpoint settings, and the discovery document's names for them.
_DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


# What a provider that is down, misconfigured or answering nonsense raises here.
_PROVIDER_ERRORS = (requests.RequestException, ValueError, KeyError, ImproperlyConfigured)


def sso_enabled() -> bool:
    return bool(settings.FLOWDECK_OIDC_ISSUER)


@lru_cache(maxsize=4)
def provider_metadata(issuer: str) -> dict:
    """The provider's discovery document, read once per process (a failure is not kept)."""
    response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
    response.raise_for_status()
    metadata = response.json()
    if metadata.get("issuer", "").rstrip("/") != issuer:
        raise ImproperlyConfigured(f"The provider at {issuer} calls itself {metadata.get('issuer')!r}: "
                                   "set FLOWDECK_OIDC_ISSUER to exactly that.")
    return metadata


def provider_setting(attr, *default):
    if attr in _DISCOVERED:
        return provider_metadata(settings.FLOWDECK_OIDC_ISSUER)[_DISCOVERED[attr]]
    return import_from_settings(attr, *default)


class LocalPasswordBackend(ModelBackend):
    """Username and password, while FLOWDECK_LOCAL_LOGIN is on. Turned off, it also ends the
    sessions it had started, so people sign in again through the provider."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.FLOWDECK_LOCAL_LOGIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_user(self, user_id):
        return super().get_user(user_id) if settings.FLOWDECK_LOCAL_LOGIN else None


class ProviderBackend(OIDCAuthenticationBackend):
    get_settings = staticmethod(provider_setting)
    # The library's get_user skips the is_active check that ModelBackend makes.
    get_user = ModelBackend.get_user

    def __init__(self, *args, **kwargs):
        # The library reads the endpoints here, but Django builds every backend for each password
        # sign-in and each request's session: discovery waits for a provider sign-in.
        pass

    def authenticate(self, request, **kwargs):
        if not (sso_enabled() and request is not None and "code" in request.GET):
            return None
        super().__init__()
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        claims = super().verify_token(token, **kwargs)
        # The library checks the signature and nonce, not who issued the token or for whom.
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss", "").rstrip("/") != settings.FLOWDECK_OIDC_ISSUER:
            raise SuspiciousOperation(f"The ID token was issued by {claims.get('iss')!r}, not our provider.")
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token was issued for another client.")
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload["sub"]:
            raise SuspiciousOperation("The provider's userinfo describes someone else than its ID token.")
        claims = payload | userinfo
        return services.sign_in_with_provider(issuer=settings.FLOWDECK_OIDC_ISSUER, claims=claims,
                                              groups=_groups(claims.get(settings.FLOWDECK_OIDC_GROUPS_CLAIM)))


def _groups(claim) -> list[str]:
    """The groups claim as a list of names: providers send a list, some a single string."""
    if isinstance(claim, str):
        return [claim]
    if isinstance(claim, list):
        return [group for group in claim if isinstance(group, str)]
    return []


class SsoStartView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider's sign-in page."""

    get_settings = staticmethod(provider_setting)

    def __init__(self, *args, **kwargs):
        # Skips the library's __init__, which asks the provider for its endpoints: `get` does,
        # where an unreachable provider can be answered with a message instead of an error page.
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request):
        if not sso_enabled():
            raise Http404("Single sign-on is not configured (FLOWDECK_OIDC_ISSUER).")
        try:
            super().__init__()
        except _PROVIDER_ERRORS as exc:
            log.warning("sso.discovery_failed", issuer=settings.FLOWDECK_OIDC_ISSUER, error=str(exc))
            messages.error(request, "The single sign-on provider cannot be reached right now. Try again in a "
                                    "minute; if it keeps failing, tell a platform admin.")
            return redirect(settings.LOGIN_URL)
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back; signs the person in or says why not."""

    get_settings = staticmethod(provider_setting)

    def get(self, request):
        if not sso_enabled():
            raise Http404("Single sign-on is not configured (FLOWDECK_OIDC_ISSUER).")
        try:
            return super().get(request)
        except (SuspiciousOperation, group_map.GroupMapError, *_PROVIDER_ERRORS) as exc:
            log.warning("sso.sign_in_failed", error=str(exc), exc_info=True)
            return self.login_failure()

    def login_failure(self):
        messages.error(self.request, "Single sign-on did not sign you in. Try again; if it keeps failing, "
                                     "tell a platform admin the time it happened.")
        return redirect(settings.LOGIN_URL)
