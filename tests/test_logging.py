"""Structured logs: JSON lines carrying request and run ids, with secret-looking values redacted."""

import io
import json
import logging

import pytest
import structlog

from apps.logging import get_logger


@pytest.fixture
def log_lines():
    """Lines written by the root logger's configured formatter, captured in memory."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().addHandler(handler)
    yield lambda: stream.getvalue().splitlines()
    logging.getLogger().removeHandler(handler)


def test_log_lines_are_json_with_bound_ids_and_no_secrets(log_lines):
    structlog.contextvars.bind_contextvars(run_id=42, step_id="extract")
    try:
        get_logger("flowdeck.test").info("connecting", host="db.internal", password="hunter2", api_key="sk-123")
    finally:
        structlog.contextvars.clear_contextvars()
    line = [entry for entry in log_lines() if "connecting" in entry][-1]
    event = json.loads(line)
    assert event["run_id"] == 42 and event["step_id"] == "extract" and event["host"] == "db.internal"
    assert "hunter2" not in line and "sk-123" not in line


def test_plain_logging_calls_are_rendered_as_json_too(log_lines):
    logging.getLogger("flowdeck.plain").warning("disk at %s%%", 91)
    line = [entry for entry in log_lines() if "disk at" in entry][-1]
    assert json.loads(line)["event"] == "disk at 91%"


def test_each_response_carries_a_request_id(client, db):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID="abc123")
    assert response["X-Request-ID"] == "abc123"
