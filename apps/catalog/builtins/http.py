"""The `http.request` step type: one HTTP call to an allow-listed host."""

import json
import re

import httpx

from apps.catalog.builtins.common import connection_named
from apps.catalog.netpolicy import HostRefused, checked_client
from apps.catalog.registry import PermanentStepError, Reason, StepContext, StepError, checked_params, step_type
from apps.logging import REDACTED, SECRET_KEY_PATTERN
from apps.runs import tracing

MAX_BODY_BYTES = 1_000_000
MAX_TEXT_CHARS = 16_000
KEPT_RESPONSE_HEADERS = ("content-type", "content-length", "etag", "last-modified", "location", "retry-after",
                         "x-request-id")
RETRYABLE_STATUSES = {408, 429}
_SENSITIVE_HEADER = re.compile(SECRET_KEY_PATTERN.pattern + "|cookie", re.I)

PARAMS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "default": "GET",
                   "description": "The HTTP method."},
        "url": {"type": "string", "minLength": 1,
                "description": "The full http(s) URL; with a `connection`, a path such as /v1/exports is joined "
                               "to the connection's URL. Its host must be on the allow-list."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                    "description": "Extra request headers. Credentials belong in a connection, not here."},
        "json": {"description": "A JSON body to send (sets Content-Type: application/json). Not with `body`."},
        "body": {"type": "string", "description": "A text body to send as it is. Not with `json`."},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30,
                    "description": "Seconds to wait for the answer before the attempt fails (retryable)."},
        "expect_status": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599},
                          "minItems": 1,
                          "description": "Statuses that count as success; by default any 2xx."},
        "connection": {"type": "string",
                       "description": "An http connection: its URL is the base for `url` and its secret is sent as "
                                      "`Authorization: Bearer <secret>`, only to that connection's host."},
    },
    "not": {"required": ["json", "body"]},
}

DOC = """Calls an HTTP API. The host must be on the platform's allow-list, and its address must not
be private, loopback, link-local, multicast or reserved unless the allow-list entry allows private
addresses (internal services). Redirects are not followed and proxies from the environment are
not used.

Every request carries `Idempotency-Key: <attempt's idempotency key>`, the same when a lost attempt
is redelivered. Delivery is at-least-once: a worker lost in the middle of a call means the same
request, with the same key, can reach the API again, so only an API that honours the header
performs a POST once.

**Output:** `{"status": 200, "headers": {...}, "json": ...}` with the JSON answer, or `"text"` with
the answer as text (at most 16,000 characters; `truncated` says when it was cut). Only a few
headers are kept: content-type, content-length, etag, last-modified, location, retry-after,
x-request-id.

**Errors:**
- a 4xx answer other than 408 and 429, a refused host, or invalid parameters: permanent, never retried;
- a 5xx, 408 or 429 answer, a timeout or a network error: retryable per the step's `retries`.
"""


def _request_target(ctx: StepContext, params: dict) -> tuple[str, dict[str, str]]:
    """The URL to call and the auth header, if the step names a connection."""
    if not params.get("connection"):
        return params["url"], {}
    connection, token = connection_named(ctx, params["connection"], "http")
    base = httpx.URL(connection.url)
    url = base.join(params["url"]) if params["url"].startswith("/") else httpx.URL(params["url"])
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        raise PermanentStepError(f"{params['url']!r} is not on connection {connection.name!r} ({connection.url}): "
                                 f"its secret is only ever sent to its own host.")
    return str(url), ({"Authorization": f"Bearer {token}"} if token else {})


def redacted_headers(headers) -> dict[str, str]:
    return {name: (REDACTED if _SENSITIVE_HEADER.search(name) else value) for name, value in headers.items()}


def _read_limited(response: httpx.Response) -> tuple[bytes, bool]:
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            return bytes(body[:MAX_BODY_BYTES]), True
    return bytes(body), False


def _output(response: httpx.Response, body: bytes, cut: bool) -> dict:
    output = {
        "status": response.status_code,
        "headers": {name: response.headers[name] for name in KEPT_RESPONSE_HEADERS if name in response.headers},
    }
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if "json" in response.headers.get("content-type", "") and not cut and len(text) <= MAX_TEXT_CHARS:
        try:
            output["json"] = json.loads(text)
            return output
        except ValueError:
            pass
    output["text"] = text[:MAX_TEXT_CHARS]
    output["truncated"] = cut or len(text) > MAX_TEXT_CHARS
    return output


@step_type("http.request", params_schema=PARAMS_SCHEMA, doc=DOC, timeout_seconds=330,
           summary="Call an HTTP API on an allow-listed host, with an idempotency key.",
           example={"method": "POST", "connection": "ledger-api", "url": "/v1/exports",
                    "json": {"period": "{{ inputs.period }}"}, "expect_status": [200, 201, 202], "timeout": 30})
def http_request(ctx: StepContext):
    params = checked_params(ctx, "http.request")
    method = params["method"]
    url, auth = _request_target(ctx, params)
    headers = {**params["headers"], **auth, "Idempotency-Key": ctx.idempotency_key}
    tracing.inject_traceparent(headers)
    ctx.log("http request", method=method, url=url, headers=redacted_headers(headers))
    body = {"json": params["json"]} if "json" in params else {"content": params.get("body")}
    try:
        with checked_client(url, timeout=params["timeout"]) as client:
            with client.stream(method, url, headers=headers, **body) as response:
                content, cut = _read_limited(response)
    except HostRefused as exc:
        raise PermanentStepError(str(exc), reason=Reason.HOST_NOT_ALLOWED, host=exc.host) from None
    except httpx.TimeoutException as exc:
        raise StepError(f"{method} {url} timed out after {params['timeout']}s ({type(exc).__name__}).") from None
    except httpx.HTTPError as exc:
        raise StepError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from None
    status = response.status_code
    ctx.log("http response", status=status, bytes=len(content))
    output = _output(response, content, cut)
    expected = params.get("expect_status")
    if (status in expected) if expected else 200 <= status < 300:
        return output
    detail = output.get("text") or json.dumps(output.get("json"))
    message = f"{method} {url} answered {status}" + (f" (expected {expected})" if expected else "") + f": {detail[:500]}"
    if status >= 500 or status in RETRYABLE_STATUSES:
        raise StepError(message)
    raise PermanentStepError(message, reason=Reason.HTTP_CLIENT_ERROR, status=status)
