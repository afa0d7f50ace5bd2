"""OpenTelemetry traces, exported by OTLP/HTTP to a receiver on 127.0.0.1: a run is one trace, each
attempt a span under the run's span, a gate's wait a span, and http.request passes the trace on."""

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import decide_gate
from apps.catalog import services as catalog
from apps.runs import engine, tracing
from apps.runs.models import RunState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


class _Receiver(BaseHTTPRequestHandler):
    """POST /v1/traces: an OTLP/HTTP protobuf export, decoded into `.spans`; anything else is a called
    service that records its request headers."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/v1/traces":
            export = ExportTraceServiceRequest.FromString(body)
            self.server.spans += [span for resource in export.resource_spans for scope in resource.scope_spans
                                  for span in scope.spans]
            self.server.resources += [attributes(resource.resource) for resource in export.resource_spans]
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.do_GET()

    def do_GET(self):
        self.server.calls.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.spans, server.resources, server.calls = [], [], []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    monkeypatch.setattr(tracing, "_configured_pid", None)  # set up again, now with the endpoint
    yield server
    tracing.shutdown()
    monkeypatch.setattr(tracing, "_configured_pid", None)
    server.shutdown()
    server.server_close()


def attributes(span) -> dict:
    return {item.key: getattr(item.value, item.value.WhichOneof("value")) for item in span.attributes}


def test_a_run_is_one_trace_with_a_span_per_attempt_and_the_called_service_joins_it(
        team, operator, platform_admin, receiver, drive, caplog):
    catalog.add_allowed_host(platform_admin, pattern="127.0.0.1", allow_private=True, note="test receiver")
    version = make_version(team, [
        step("flaky", "test.flaky", retries={"count": 1}),
        step("call", "http.request", needs=["flaky"], params={"url": f"{receiver.url}/hook"}),
    ])
    caplog.set_level(logging.INFO)
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.SUCCEEDED
    tracing.shutdown()

    trace_id, root_id = tracing.run_ids(run.pk)
    assert {span.trace_id for span in receiver.spans} == {trace_id.to_bytes(16, "big")}
    root = next(span for span in receiver.spans if span.name == f"run {run.pk}")
    assert root.span_id == root_id.to_bytes(8, "big") and root.parent_span_id == b""
    assert attributes(root)["flowdeck.outcome"] == "succeeded"
    attempts = sorted((span for span in receiver.spans if span.name.startswith("step ")),
                      key=lambda span: span.start_time_unix_nano)
    assert [(attributes(s)["flowdeck.step_id"], attributes(s)["flowdeck.attempt"], attributes(s)["flowdeck.outcome"])
            for s in attempts] == [("flaky", 1, "failed"), ("flaky", 2, "succeeded"), ("call", 1, "succeeded")]
    assert all(span.parent_span_id == root.span_id for span in attempts)
    call = attributes(attempts[2])
    assert call["flowdeck.step_type"] == "http.request" and call["flowdeck.queue"] == "steps"
    assert attributes(attempts[0])["error.type"] == "StepError"
    # The worker that ran them is named once per export, on the resource.
    assert {resource["host.name"] for resource in receiver.resources} == {socket.gethostname()}

    # The called service received the http.request attempt's span as its parent.
    traceparent = receiver.calls[0]["traceparent"]
    assert traceparent == f"00-{trace_id:032x}-{attempts[2].span_id.hex()}-01"
    # Lines logged inside the attempt carry its ids.
    logged = [record.msg for record in caplog.records
              if isinstance(record.msg, dict) and record.msg.get("event") == "http request"]
    assert logged and logged[0]["trace_id"] == f"{trace_id:032x}"
    assert logged[0]["span_id"] == attempts[2].span_id.hex()


def test_a_gate_wait_is_a_span_from_opening_to_decision(team, operator, approver, approver_group, receiver, drive,
                                                        django_capture_on_commit_callbacks):
    version = make_version(team, [step("pay", approval={"group": "billing-approvers", "quorum": 1})])
    run = drive(engine.start_run(operator, version))
    gate = ApprovalRequest.objects.get(run=run, kind="gate")
    with django_capture_on_commit_callbacks(execute=True):
        decide_gate(approver, gate, "approve")
    run = drive(run)
    assert run.state == RunState.SUCCEEDED
    tracing.shutdown()

    gate.refresh_from_db()
    trace_id, root_id = tracing.run_ids(run.pk)
    wait = next(span for span in receiver.spans if span.name == "gate wait")
    assert wait.trace_id == trace_id.to_bytes(16, "big") and wait.parent_span_id == root_id.to_bytes(8, "big")
    assert wait.start_time_unix_nano == int(gate.created_at.timestamp() * 1e9)
    assert wait.end_time_unix_nano == int(gate.decided_at.timestamp() * 1e9)
    assert attributes(wait)["flowdeck.outcome"] == "approved"

