"""Structured logging: JSON lines through structlog, with request, run, step, attempt and trace ids.

Ids are bound with `structlog.contextvars` (by the request middleware below, and by the engine
around each step attempt), so every log line written meanwhile carries them. Values of keys
that look like secrets are replaced before a line is written.
"""

import logging
import re
import uuid

import structlog
from opentelemetry import trace

SECRET_KEY_PATTERN = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|credential", re.I)
REDACTED = "[redacted]"


def redact_secrets(_logger, _method, event_dict):
    for key in list(event_dict):
        if SECRET_KEY_PATTERN.search(key):
            event_dict[key] = REDACTED
    return event_dict


def add_trace_ids(_logger, _method, event_dict):
    """The current OpenTelemetry span's ids, on lines written inside one (apps.runs.tracing)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


SHARED_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_trace_ids,
    redact_secrets,
]


def logging_config(level: str, fmt: str) -> dict:
    renderer = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": SHARED_PROCESSORS,
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "faiss.loader": {"level": "WARNING"},
            "celery": {"level": level},
        },
    }


class RequestContextMiddleware:
    """Binds a request id (and the user, once known) to every log line of a request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            structlog.contextvars.bind_contextvars(user=request.user.get_username())
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def get_logger(name: str):
    return structlog.get_logger(name)


__all__ = ["get_logger", "logging_config", "RequestContextMiddleware", "REDACTED", "logging"]
