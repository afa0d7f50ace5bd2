"""http.request: the allow-list, private-address refusal, status handling, idempotency and auth."""

import logging
import socket

import pytest

from apps.catalog import services
from apps.catalog.netpolicy import address_refusal
from apps.catalog.registry import PermanentStepError, StepError

from .fakes import run_step

pytestmark = pytest.mark.django_db


def test_host_not_on_the_allow_list_is_refused_before_any_request(http_server):
    with pytest.raises(PermanentStepError, match="not on the allow-list"):
        run_step("http.request", {"url": f"{http_server.url}/ok"})
    assert http_server.requests == []


def test_loopback_address_is_refused_without_allow_private(http_server, platform_admin):
    services.add_allowed_host(platform_admin, pattern="127.0.0.1")
    with pytest.raises(PermanentStepError, match="private, loopback"):
        run_step("http.request", {"url": f"{http_server.url}/ok"})
    assert http_server.requests == []


def test_name_resolving_to_loopback_is_refused(http_server, platform_admin):
    services.add_allowed_host(platform_admin, pattern="localhost")
    port = http_server.url.rsplit(":", 1)[1]
    with pytest.raises(PermanentStepError, match="resolves to"):
        run_step("http.request", {"url": f"http://localhost:{port}/ok"})
    assert http_server.requests == []


def test_allowed_private_host_is_called_with_the_idempotency_key(http_server, allow_local):
    output, _ = run_step("http.request", {"method": "POST", "url": f"{http_server.url}/exports",
                                          "json": {"period": "2026-10"}},
                         idempotency_key="run-7-export-1")
    assert output["status"] == 200 and output["json"] == {"path": "/exports", "status": 200}
    assert output["headers"]["content-type"] == "application/json"
    assert "set-cookie" not in output["headers"]
    request = http_server.requests[0]
    assert request["method"] == "POST" and request["headers"]["Idempotency-Key"] == "run-7-export-1"
    assert request["body"] == '{"period":"2026-10"}'


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_permanent(http_server, allow_local, status):
    with pytest.raises(PermanentStepError, match=f"answered {status}"):
        run_step("http.request", {"url": f"{http_server.url}/status/{status}"})


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_timeouts_and_rate_limits_are_retryable(http_server, allow_local, status):
    with pytest.raises(StepError, match=f"answered {status}") as failure:
        run_step("http.request", {"url": f"{http_server.url}/status/{status}"})
    assert not failure.value.permanent


def test_expected_status_list_decides_success(http_server, allow_local):
    output, _ = run_step("http.request", {"url": f"{http_server.url}/status/404", "expect_status": [200, 404]})
    assert output["status"] == 404
    with pytest.raises(PermanentStepError, match="expected \\[201\\]"):
        run_step("http.request", {"url": f"{http_server.url}/ok", "expect_status": [201]})


def test_unreachable_server_is_retryable(allow_local):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(StepError) as failure:
        run_step("http.request", {"url": f"http://127.0.0.1:{free_port}/", "timeout": 2})
    assert not failure.value.permanent


def test_connection_secret_is_sent_as_bearer_token_and_never_logged(http_server, allow_local, make_connection,
                                                                     caplog):
    make_connection("ledger-api", kind="http", url=http_server.url, secret="s3cr3t-ledger-token")
    caplog.set_level(logging.DEBUG)
    output, ctx = run_step("http.request", {"connection": "ledger-api", "url": "/v1/exports"})
    assert output["status"] == 200
    assert http_server.requests[0]["path"] == "/v1/exports"
    assert http_server.requests[0]["headers"]["Authorization"] == "Bearer s3cr3t-ledger-token"
    assert ctx.logs[0]["headers"]["Authorization"] == "[redacted]"
    assert "s3cr3t-ledger-token" not in repr(ctx.logs) + caplog.text + repr(output)


def test_connection_secret_is_not_sent_to_another_host(http_server, allow_local, make_connection):
    make_connection("ledger-api", kind="http", url=http_server.url, secret="s3cr3t-ledger-token")
    with pytest.raises(PermanentStepError, match="only ever sent to its own host"):
        run_step("http.request", {"connection": "ledger-api", "url": "http://127.0.0.1:1/steal"})


def test_wildcard_entry_allows_subdomains_only(platform_admin):
    entry = services.add_allowed_host(platform_admin, pattern="*.Example.com")
    assert entry.matches("api.example.com") and entry.matches("a.b.example.com")
    assert not entry.matches("example.com") and not entry.matches("evilexample.com")


@pytest.mark.parametrize("address, allow_private, refused", [
    ("8.8.8.8", False, False),
    ("10.1.2.3", False, True),
    ("10.1.2.3", True, False),
    ("169.254.169.254", False, True),
    ("169.254.169.254", True, False),
    ("::1", True, False),
    ("::ffff:127.0.0.1", False, True),
    ("224.0.0.1", True, True),
    ("0.0.0.0", True, True),
    ("240.0.0.1", True, True),
])
def test_address_policy(address, allow_private, refused):
    assert (address_refusal(address, allow_private) is not None) is refused
