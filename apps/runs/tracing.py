"""OpenTelemetry traces: a run is a trace, each step attempt a span, each approval wait a span.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set and
OTEL_SDK_DISABLED is not true: then no tracer provider exists and every call here is a cheap no-op.
The other standard OTEL_* variables (service name, headers, timeouts, batch sizes) are read by the
SDK itself. Spans leave through a BatchSpanProcessor thread, so exporting never slows a step.

No trace context travels through the broker: a run's trace id and its root span id are derived
from the run's primary key and this install's SECRET_KEY, so every worker process that runs an
attempt of the run joins the same trace. The run's own span is recorded when the run ends, and
an approval's wait span when it is decided, each with its real start time.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import os
import socket
from contextlib import contextmanager, nullcontext
from datetime import datetime

from django.conf import settings
from django.db import transaction

_provider = None  # this process's TracerProvider, or None while tracing is off
_tracer = None
_configured_pid: int | None = None
# Ids the next span must take (the run's root span), read by RunIdGenerator.
_forced_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("flowdeck_forced_ids",
                                                                                      default=None)


def wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure() -> None:
    """Set up this process's tracer provider (again after a fork: the batch thread does not survive one)."""
    global _provider, _tracer, _configured_pid
    if _configured_pid == os.getpid():
        return
    _configured_pid = os.getpid()
    _provider = _tracer = None
    if not wanted():
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _provider = TracerProvider(resource=_process_resource(), id_generator=_id_generator())
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = _provider.get_tracer("flowdeck")


def _process_resource():
    """The worker's host and pid describe the process, so they are said once per export, not per span."""
    from opentelemetry.sdk.resources import Resource

    class ProcessResource(Resource):
        """Hashed once. The OTLP encoder groups each span by its resource, and Resource's own hash
        writes its attributes as JSON every time (30% of the encoding in a profiled worker), in the
        batch thread that shares the step's process. A resource is immutable."""

        def __init__(self, attributes, schema_url=None):
            super().__init__(attributes, schema_url)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash

    detected = Resource.create({"service.name": "flowdeck", "host.name": socket.gethostname(),
                                "process.pid": os.getpid()})
    return ProcessResource(detected.attributes, detected.schema_url)


def shutdown() -> None:
    """Flush what is batched (a worker process exiting, a test reading its receiver)."""
    if _provider is not None:
        _provider.force_flush()


def _tracer_or_none():
    if _configured_pid != os.getpid():
        configure()
    return _tracer


def run_ids(run_id: int) -> tuple[int, int]:
    """The run's trace id and its root span's id: the same in every process of this install."""
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:flowdeck-run-trace:{run_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


@functools.lru_cache(maxsize=64)
def _run_context(run_id: int):
    from opentelemetry import trace

    trace_id, span_id = run_ids(run_id)
    parent = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def _id_generator():
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunIdGenerator(RandomIdGenerator):
        """Random ids, except for a run's root span, whose ids are derived (see run_ids)."""

        def generate_trace_id(self) -> int:
            forced = _forced_ids.get()
            return forced[0] if forced else super().generate_trace_id()

        def generate_span_id(self) -> int:
            forced = _forced_ids.get()
            return forced[1] if forced else super().generate_span_id()

    return RunIdGenerator()


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


@contextmanager
def _attempt_span(tracer, claimed):
    from opentelemetry import trace

    # Few attributes: each one costs on every attempt, in the span and in its export. The run is the trace.
    attributes = {"flowdeck.step_id": claimed.step_id, "flowdeck.step_type": claimed.step_type,
                  "flowdeck.attempt": claimed.number, "flowdeck.queue": claimed.queue}
    if claimed.kind != "step":
        attributes["flowdeck.attempt_kind"] = claimed.kind
    span = tracer.start_span(f"step {claimed.step_id}", context=_run_context(claimed.run_id), attributes=attributes)
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        yield span


def attempt_span(claimed):
    """A span around one attempt, current while the step runs (logs and http.request read it)."""
    tracer = _tracer_or_none()
    return nullcontext() if tracer is None else _attempt_span(tracer, claimed)


def set_outcome(span, outcome: str, error_type: str = "") -> None:
    """Note how the attempt ended: succeeded, failed, revoked or discarded."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("flowdeck.outcome", outcome)
    if error_type:
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, error_type))


def inject_traceparent(headers: dict) -> None:
    """Add the current span's W3C `traceparent` to outgoing headers, so a called service joins the trace."""
    if _tracer is None:
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    TraceContextTextMapPropagator().inject(headers)


def record_run(sender, run, **kwargs) -> None:
    """run_ended receiver: the run's root span, from its start to its end, with its derived ids."""
    tracer = _tracer_or_none()
    if tracer is None:
        return
    token = _forced_ids.set(run_ids(run.pk))
    try:
        span = tracer.start_span(f"run {run.pk}", start_time=_nanos(run.started_at or run.created_at), attributes={
            "flowdeck.run_id": run.pk, "flowdeck.workflow_id": run.workflow_id,
            "flowdeck.version_id": run.version_id, "flowdeck.trigger": run.trigger, "flowdeck.outcome": run.state})
    finally:
        _forced_ids.reset(token)
    span.end(end_time=_nanos(run.finished_at) if run.finished_at else None)


def record_approval_wait(sender, instance, created, update_fields=None, **kwargs) -> None:
    """post_save receiver for approval requests: once decided, the wait from opening to decision is a
    child span of the run's root, recorded after the decision commits."""
    if created or instance.decided_at is None or instance.state == "pending":
        return
    if update_fields is not None and "state" not in update_fields:
        return
    tracer = _tracer_or_none()
    if tracer is None:
        return
    attributes = {"flowdeck.run_id": instance.run_id, "flowdeck.step_run_id": instance.step_run_id,
                  "flowdeck.approval_kind": instance.kind, "flowdeck.outcome": instance.state,
                  "flowdeck.verdict": instance.outcome or ""}
    started, ended = _nanos(instance.created_at), _nanos(instance.decided_at)
    context = _run_context(instance.run_id)

    def record():
        span = tracer.start_span(f"{instance.kind} wait", context=context, start_time=started, attributes=attributes)
        span.end(end_time=ended)

    transaction.on_commit(record)

