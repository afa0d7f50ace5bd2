"""Webhooks: signed requests start runs; bad signatures, replays, bad bodies, repeats, floods refused."""

import json
import time

import pytest

from apps.runs.models import Run, RunState, Trigger
from apps.triggers import services
from apps.triggers.models import TriggerEvent
from apps.triggers.webhooks import sign
from tests.triggers.conftest import declared

INPUTS = {"period": {"type": "string", "required": True, "default": None, "description": "Month"},
          "amount": {"type": "integer", "required": False, "default": 0, "description": ""}}


@pytest.fixture
def hooked(make_workflow):
    workflow = make_workflow([{"webhook": {"batch": None}}], inputs=INPUTS)
    endpoint, secret = services.rotate_webhook_secret(None, workflow)
    return workflow, f"/triggers/hooks/{endpoint.token}/", secret


def post(client, url, secret, payload, *, timestamp=None, key=None, raw=None, signature=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"HTTP_X_FLOWDECK_SIGNATURE": signature or sign(secret, body, timestamp)}
    if key:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(url, body, content_type="application/json", **headers)


def test_signed_request_starts_a_run_and_answers_202_with_its_url(client, hooked):
    workflow, url, secret = hooked
    response = post(client, url, secret, {"period": "2026-11", "amount": 3})
    assert response.status_code == 202
    run = Run.objects.get(workflow=workflow)
    assert response.json()["run_url"].endswith(f"/runs/{run.pk}/")
    assert run.trigger == Trigger.WEBHOOK and run.inputs == {"period": "2026-11", "amount": 3}


def test_bad_signature_is_refused_and_starts_nothing(client, hooked):
    workflow, url, _ = hooked
    response = post(client, url, "not-the-secret", {"period": "2026-11"})
    assert response.status_code == 401 and "does not match" in response.json()["error"]
    missing = client.post(url, b"{}", content_type="application/json")
    assert missing.status_code == 401 and "X-Flowdeck-Signature" in missing.json()["error"]
    assert not Run.objects.filter(workflow=workflow).exists()


def test_replay_older_than_five_minutes_is_refused(client, hooked):
    workflow, url, secret = hooked
    response = post(client, url, secret, {"period": "2026-11"}, timestamp=int(time.time()) - 301)
    assert response.status_code == 401 and "accepted for 300s" in response.json()["error"]
    assert not Run.objects.filter(workflow=workflow).exists()


def test_same_signed_request_replayed_inside_the_window_starts_one_run(client, hooked):
    workflow, url, secret = hooked
    body = json.dumps({"period": "2026-11"}).encode()
    signature = sign(secret, body)
    first = post(client, url, secret, None, raw=body, signature=signature)
    again = post(client, url, secret, None, raw=body, signature=signature)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["duplicate"] is True and again.json()["run_id"] == first.json()["run_id"]
    assert Run.objects.filter(workflow=workflow).count() == 1


def test_bad_body_gets_a_400_naming_the_field(client, hooked):
    workflow, url, secret = hooked
    response = post(client, url, secret, {"period": 202611, "colour": "red"})
    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"inputs.period", "inputs.colour"}
    assert "`period` must be text" in response.json()["error"]
    not_json = post(client, url, secret, None, raw=b"period=2026-11")
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    assert not Run.objects.filter(workflow=workflow).exists()


def test_repeated_idempotency_key_starts_at_most_one_run(client, hooked):
    workflow, url, secret = hooked
    first = post(client, url, secret, {"period": "2026-11"}, key="invoice-42")
    # A retry signed afresh (new timestamp) with the same key is the same request.
    second = post(client, url, secret, {"period": "2026-11"}, key="invoice-42", timestamp=int(time.time()) - 5)
    assert first.json()["run_id"] == second.json()["run_id"] and second.json()["duplicate"] is True
    assert Run.objects.filter(workflow=workflow).count() == 1


def test_body_over_the_limit_is_refused(client, hooked, settings):
    settings.FLOWDECK_WEBHOOK_MAX_BYTES = 100
    _, url, secret = hooked
    response = post(client, url, secret, {"period": "x" * 200})
    assert response.status_code == 413 and "limit is 100" in response.json()["error"]


def test_flood_is_rate_limited_per_workflow(client, hooked, settings):
    settings.FLOWDECK_WEBHOOK_RATE_PER_MINUTE = 3
    workflow, url, secret = hooked
    codes = [post(client, url, secret, {"period": f"2026-{n:02}"}).status_code for n in range(1, 6)]
    assert codes == [202, 202, 202, 429, 429]
    limited = post(client, url, secret, {"period": "2026-09"})
    assert int(limited["Retry-After"]) >= 1
    assert Run.objects.filter(workflow=workflow).count() == 3


def test_unknown_token_and_workflow_without_webhook_answer_404(client, make_workflow, hooked):
    _, url, secret = hooked
    assert post(client, "/triggers/hooks/nope/", secret, {}).status_code == 404
    make_workflow([], inputs=INPUTS)  # the webhook trigger is removed from the workflow
    assert post(client, url, secret, {"period": "2026-11"}).status_code == 404


def test_batching_webhook_collects_events_until_max_items(client, make_workflow):
    workflow = make_workflow([{"webhook": {"batch": {"max_items": 2, "max_wait": None}}}],
                             inputs={"events": {"type": "array", "required": True, "default": None, "description": ""}})
    endpoint, secret = services.rotate_webhook_secret(None, workflow)
    url = f"/triggers/hooks/{endpoint.token}/"
    first = post(client, url, secret, {"id": 1}, key="e1")
    assert first.status_code == 202 and "run_id" not in first.json()
    second = post(client, url, secret, {"id": 2}, key="e2")
    run = Run.objects.get(workflow=workflow)
    assert second.json()["run_id"] == run.pk and run.inputs == {"events": [{"id": 1}, {"id": 2}]}
    assert set(TriggerEvent.objects.filter(workflow=workflow).values_list("run", flat=True)) == {run.pk}


def test_author_rotates_the_secret_and_sees_it_once(client_for, author, hooked):
    workflow, old_url, _ = hooked
    client = client_for(author)
    response = client.post(f"/triggers/workflows/{workflow.pk}/webhook/rotate/", follow=True)
    text = response.content.decode()
    assert "Signing secret (shown once" in text and "whsec_" in text
    assert "whsec_" not in client.get(f"/triggers/workflows/{workflow.pk}/").content.decode()
    assert old_url not in text


def test_viewer_cannot_rotate_the_secret(client_for, viewer, hooked):
    workflow, _, _ = hooked
    assert client_for(viewer).post(f"/triggers/workflows/{workflow.pk}/webhook/rotate/").status_code == 403


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_webhook_run_is_carried_out_by_a_real_worker(worker, wait_for, client, make_workflow):
    from tests.runs.factories import step

    workflow = make_workflow([{"webhook": {"batch": None}}], inputs=declared(period="string"),
                             steps=[step("echo", params={"period": "{{ inputs.period }}"})])
    endpoint, secret = services.rotate_webhook_secret(None, workflow)
    response = post(client, f"/triggers/hooks/{endpoint.token}/", secret, {"period": "2026-11"}, key="k1")
    assert response.status_code == 202
    run = wait_for(Run.objects.get(pk=response.json()["run_id"]), RunState.SUCCEEDED, RunState.FAILED)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="echo").output == {"period": "2026-11"}
