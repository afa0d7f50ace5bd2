"""The optional LLM summary against a small OpenAI-compatible server started on 127.0.0.1."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.knowledge import indexing
from apps.knowledge.llm import redact_text, request_summary, write_summary
from apps.knowledge.models import LlmSummary, SummaryStatus
from tests.knowledge.conftest import resolved_incident

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.knowledge.urls")]


class FakeOpenAI(BaseHTTPRequestHandler):
    mode = "ok"
    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if self.mode == "slow":
            time.sleep(3)
        if self.mode == "error":
            self._send(500, {"error": {"message": "model overloaded", "type": "server_error"}})
            return
        self._send(200, {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop", "message": {
                             "role": "assistant", "content": "Disk full on the landing zone [1]. Purge archives [2]."}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def llm_server(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeOpenAI.mode, FakeOpenAI.requests = "ok", []
    settings.FLOWDECK_LLM_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.FLOWDECK_LLM_API_KEY = "test-key"
    settings.FLOWDECK_LLM_MODEL = "tiny-model"
    settings.FLOWDECK_LLM_TIMEOUT_SECONDS = 1
    yield FakeOpenAI
    server.shutdown()
    server.server_close()


@pytest.fixture
def incident(team, operator, fake_encoder):
    from apps.incidents.services import open_incident

    resolved_incident(team, "Landing zone full", "No space left on device", "disk-full", resolution="Purged archives")
    indexing.build_index()
    return open_incident(operator, team=team, title="Copy failed on lz-01",
                         error_message="No space left on device; password=hunter2 contact ops.lead@example.com "
                                       "postgres://loader:s3cr3t@db:5432/x")


def test_summary_is_grounded_in_redacted_cited_evidence(llm_server, incident):
    summary = write_summary(incident.pk)

    assert summary.status == SummaryStatus.READY
    assert "[1]" in summary.text
    assert summary.citations[0]["url"].startswith("/incidents/")
    sent = json.dumps(llm_server.requests[0]["body"])
    assert llm_server.requests[0]["path"] == "/v1/chat/completions"
    assert "hunter2" not in sent and "ops.lead@example.com" not in sent and "s3cr3t" not in sent
    assert "No space left on device" in sent

    write_summary(incident.pk)
    assert len(llm_server.requests) == 1  # cached while the evidence is unchanged


def test_a_slow_endpoint_times_out_and_the_page_says_so(llm_server, incident, client_for, operator):
    llm_server.mode = "slow"
    summary = write_summary(incident.pk)
    assert summary.status == SummaryStatus.FAILED
    assert "Timeout" in summary.error
    page = client_for(operator).get(f"/incidents/{incident.pk}/").content.decode()
    assert "The summary could not be written" in page
    assert "Suggested root causes" in page


def test_a_server_error_falls_back_without_breaking_the_page(llm_server, incident, client_for, operator):
    llm_server.mode = "error"
    summary = write_summary(incident.pk)
    assert summary.status == SummaryStatus.FAILED and "500" in summary.error
    assert client_for(operator).get(f"/incidents/{incident.pk}/").status_code == 200


def test_without_configuration_the_summary_is_unavailable_and_nothing_is_sent(settings, incident, operator,
                                                                              django_capture_on_commit_callbacks):
    settings.FLOWDECK_LLM_BASE_URL = ""
    with django_capture_on_commit_callbacks() as callbacks:
        summary = request_summary(operator, incident)
    assert summary.status == SummaryStatus.UNAVAILABLE and callbacks == []


def test_asking_for_a_summary_queues_it_off_the_request_path(llm_server, incident, client_for, operator,
                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(operator).post(f"/knowledge/incidents/{incident.pk}/summary/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "being written" in response.content.decode()
    assert LlmSummary.objects.get(incident=incident).status == SummaryStatus.PENDING
    assert len(callbacks) == 1 and llm_server.requests == []


def test_redaction_removes_keys_tokens_and_personal_data():
    text = redact_text("Authorization: Bearer abcdefghijklmnop AKIAABCDEFGHIJKLMNOP api_key=xyz call +44 20 7946 0958")
    assert "abcdefghijklmnop" not in text and "AKIAABCDEFGHIJKLMNOP" not in text
    assert "xyz" not in text and "7946" not in text
