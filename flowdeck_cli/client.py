"""The console's REST API over httpx: one place that turns HTTP answers into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from flowdeck_cli.config import Settings
from flowdeck_cli.exits import Exit, Failure

TIMEOUT_SECONDS = 30.0
CODES = {
    400: Exit.VALIDATION_FAILED,
    401: Exit.NOT_ALLOWED,
    403: Exit.NOT_ALLOWED,
    404: Exit.NOT_FOUND,
    409: Exit.CONFLICT,
}


def _message(body: Any) -> str:
    """The server's words: DRF answers {"detail": ...} or {field: [messages]}."""
    if isinstance(body, dict):
        if "detail" in body:
            return str(body["detail"])
        return "; ".join(f"{field}: {_message(value)}" for field, value in body.items())
    if isinstance(body, list):
        return " ".join(_message(item) for item in body)
    return str(body)


class Api:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = settings.url
        self._http = httpx.Client(
            base_url=f"{settings.url}/api/v1/",
            timeout=TIMEOUT_SECONDS,
            headers={
                "Authorization": f"Bearer {settings.token}",
                "User-Agent": "flowdeck-cli",
                "Accept": "application/json",
            },
        )

    def request(self, method: str, path: str, *, accept: tuple[int, ...] = (), **kwargs) -> tuple[int, Any]:
        """(status, JSON body). A status in `accept` is returned to the caller, who reads its
        body (a 400 that lists a file's errors); other refusals end the command."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise Failure(
                Exit.UNREACHABLE,
                f"Cannot reach the console at {self.url}: {error or type(error).__name__}."
                " Check FLOWDECK_URL and that the console is running.",
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success or response.status_code in accept:
            if body is None:
                raise Failure(
                    Exit.ERROR,
                    f"{self.url} answered {path} with something other than JSON: is it a Flowdeck console's URL?",
                )
            return response.status_code, body
        code = CODES.get(response.status_code, Exit.ERROR)
        text = _message(body) if body is not None else response.reason_phrase
        raise Failure(code, f"{method} {path}: {response.status_code} {text}")

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params={key: value for key, value in params.items() if value})[1]

    def post(self, path: str, body: dict | None = None, **kwargs) -> tuple[int, Any]:
        return self.request("POST", path, json=body or {}, **kwargs)

    def pages(self, path: str, limit: int, **params) -> Iterator[dict]:
        """Up to `limit` items of a paginated list, following its `next` links."""
        page, given = 1, 0
        while given < limit:
            body = self.get(path, page=page, **params)
            for item in body["results"][: limit - given]:
                given += 1
                yield item
            if not body.get("next"):
                return
            page += 1
