"""Which hosts and addresses outbound HTTP from steps may reach.

A host must match an AllowedHost. Its name is resolved at connect time and every address is
checked: multicast, reserved and unspecified addresses are always refused; private, loopback
and link-local ones only pass when the matching AllowedHost has `allow_private`. The checked
address is the one connected to, so a DNS answer that changes between check and connect
(DNS rebinding) cannot slip a request through to an internal address.
"""

import ipaddress
import socket

import httpcore
import httpx

from apps.catalog.models import AllowedHost


class HostRefused(Exception):
    """The host or its address is not allowed; the message says what a platform admin can do."""

    def __init__(self, message: str, host: str = ""):
        super().__init__(message)
        self.host = host


def allowed_host_for(host: str) -> AllowedHost:
    host = (host or "").lower().rstrip(".")
    for entry in AllowedHost.objects.all():
        if entry.matches(host):
            return entry
    raise HostRefused(f"Host {host!r} is not on the allow-list: ask a platform admin to add it under "
                      f"Step types → Connections → Allowed hosts.", host)


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why `address` may not be reached, or None when it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return "a multicast or unspecified address, which is never allowed"
    if ip.is_global:
        return None
    if allow_private and (ip.is_loopback or ip.is_link_local or (ip.is_private and not ip.is_reserved)):
        return None
    if allow_private:
        return "a reserved address, which is never allowed"
    return ("a private, loopback, link-local or reserved address; a platform admin can allow private "
            "addresses on the allow-list entry if this is an internal service")


def resolve_checked(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses of `host` that may be reached; refuses the host if any address may not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        reason = address_refusal(address, allow_private)
        if reason:
            raise HostRefused(f"Host {host!r} resolves to {address}, {reason}.", host)
    return addresses


class _CheckedBackend(httpcore.SyncBackend):
    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last_error = None
        for address in resolve_checked(host, port, self.allow_private):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"no address of {host!r} answered")


class CheckedTransport(httpx.HTTPTransport):
    """httpx's own transport, connecting only to addresses that passed `resolve_checked`."""

    def __init__(self, allow_private: bool):
        super().__init__(trust_env=False)
        # httpx offers no hook for the network backend: rebuild its pool around ours, same TLS settings.
        self._pool = httpcore.ConnectionPool(ssl_context=self._pool._ssl_context,
                                             network_backend=_CheckedBackend(allow_private))


def checked_client(url: str, *, timeout: float) -> httpx.Client:
    """An httpx client for `url`, refused unless its host is allowed; never follows redirects or proxies."""
    parts = httpx.URL(url)
    if parts.scheme not in ("http", "https"):
        raise HostRefused(f"Only http:// and https:// URLs can be called, not {url!r}.")
    entry = allowed_host_for(parts.host)
    return httpx.Client(transport=CheckedTransport(entry.allow_private), timeout=timeout,
                        follow_redirects=False, trust_env=False)
