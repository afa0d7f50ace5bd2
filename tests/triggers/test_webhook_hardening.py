"""The public webhook endpoint refuses whatever a request holds with a JSON answer, never a 500:
malformed signature headers (401), bodies over the limit at any size (413), bodies no database
can store (400), and an Idempotency-Key reused for a different body (422 naming the first run)."""

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from apps.runs.models import Run
from apps.triggers import services
from apps.triggers.models import EventBatch, TriggerEvent
from apps.triggers.webhooks import WebhookRefused, read_body, sign
from tests.triggers.test_webhooks import INPUTS, post

DIGEST = "a" * 64


@pytest.fixture
def hooked(make_workflow):
    workflow = make_workflow([{"webhook": {"batch": None}}], inputs=INPUTS)
    endpoint, secret = services.rotate_webhook_secret(None, workflow)
    return workflow, f"/triggers/hooks/{endpoint.token}/", secret


@pytest.fixture
def batching(make_workflow):
    workflow = make_workflow([{"webhook": {"batch": {"max_items": 3, "max_wait": None}}}],
                             inputs={"events": {"type": "array", "required": True, "default": None, "description": ""}})
    endpoint, secret = services.rotate_webhook_secret(None, workflow)
    return workflow, f"/triggers/hooks/{endpoint.token}/", secret


def _signature_with_parts(secret: str, body: bytes, *extra: str) -> str:
    return ",".join([sign(secret, body), *extra])


def _assert_refused_as_json(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    return response.json()


@pytest.mark.parametrize("signature", [
    "t=²,v1=" + DIGEST,                            # isdigit() is true, int() fails
    "t=" + "9" * 5000 + ",v1=" + DIGEST,           # beyond Python's integer-string limit
    "t=١٧٠٠٠٠٠٠٠٠,v1=" + DIGEST,                   # Arabic-Indic digits: int() reads them
    "v1=" + DIGEST,                                # no timestamp
    "t={now}",                                     # no digest
    "t={now},v1=é" + "a" * 63,                     # non-ASCII digest: compare_digest raises TypeError
    "t={now},v1=xyz",                              # not hexadecimal
    "t={now},v1=" + DIGEST + ",v1=" + DIGEST,      # repeated part
    "t={now};v1=" + DIGEST,                        # wrong separator
    "t={now},v1=" + DIGEST + ",v0=" + DIGEST,      # unknown part
    ",,,", "=", "t", "t=,v1=",
    "t={now},v1=" + "a" * 100_000,                 # huge header
])
def test_malformed_signature_header_is_a_401_and_starts_nothing(client, hooked, signature):
    workflow, url, secret = hooked
    response = post(client, url, secret, {"period": "2026-11"},
                    signature=signature.replace("{now}", str(int(time.time()))))
    assert "X-Flowdeck-Signature: t=<unix seconds>" in _assert_refused_as_json(response, 401)["error"]
    assert not Run.objects.filter(workflow=workflow).exists()
    assert not TriggerEvent.objects.filter(workflow=workflow).exists()


def test_a_valid_signature_with_a_repeated_timestamp_is_refused(client, hooked):
    """The old parser kept the last of repeated parts, so a second `t` could move the timestamp."""
    workflow, url, secret = hooked
    body = json.dumps({"period": "2026-11"}).encode()
    response = post(client, url, secret, None, raw=body,
                    signature=_signature_with_parts(secret, body, f"t={int(time.time())}"))
    assert "`t` is given twice" in _assert_refused_as_json(response, 401)["error"]
    assert not Run.objects.filter(workflow=workflow).exists()


_PART_NAMES = st.sampled_from(["t", "v1", "v0", "T", " t", "v1 ", "", "t=t"])
_PART_VALUES = st.one_of(st.text(max_size=80), st.from_regex(r"[0-9a-f²٣]{0,70}", fullmatch=True),
                         st.integers(-10**30, 10**30).map(str))
_HEADERS = st.one_of(
    st.text(max_size=700),
    st.lists(st.tuples(_PART_NAMES, st.sampled_from(["=", "==", ""]), _PART_VALUES), max_size=5)
    .map(lambda parts: ",".join(name + sep + value for name, sep, value in parts)),
).filter(bool)  # an empty header makes `post` sign the request properly


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(signature=_HEADERS)
def test_any_signature_header_is_answered_without_a_server_error(client, hooked, signature):
    workflow, url, secret = hooked
    response = post(client, url, secret, {"period": "2026-11"}, signature=signature)
    _assert_refused_as_json(response, 401)
    assert not Run.objects.filter(workflow=workflow).exists()


def test_body_over_djangos_own_limit_gets_our_json_413(client, hooked, settings):
    settings.FLOWDECK_WEBHOOK_MAX_BYTES = 256 * 1024
    workflow, url, secret = hooked
    body = json.dumps({"period": "x" * (3 * 1024 * 1024)}).encode()  # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
    response = post(client, url, secret, None, raw=body)
    assert "limit is 262144" in _assert_refused_as_json(response, 413)["error"]
    assert not Run.objects.filter(workflow=workflow).exists()


def test_our_limit_governs_even_above_djangos(client, hooked, settings):
    settings.FLOWDECK_WEBHOOK_MAX_BYTES = 4 * 1024 * 1024
    workflow, url, secret = hooked
    response = post(client, url, secret, {"period": "x" * (3 * 1024 * 1024)})
    assert response.status_code == 202
    assert len(Run.objects.get(workflow=workflow).inputs["period"]) == 3 * 1024 * 1024


@pytest.mark.parametrize("declared", ["1000000000000", "9" * 5000])
def test_declared_length_over_the_limit_is_refused_before_the_body_is_read(client, hooked, declared):
    workflow, url, secret = hooked
    body = json.dumps({"period": "2026-11"}).encode()
    response = client.post(url, body, content_type="application/json", CONTENT_LENGTH=declared,
                           HTTP_X_FLOWDECK_SIGNATURE=sign(secret, body))
    assert "the limit is" in _assert_refused_as_json(response, 413)["error"]
    assert not Run.objects.filter(workflow=workflow).exists()


class _EndlessStream:
    """A request whose body never ends and whose length is not declared (chunked upload)."""

    META = {}

    def __init__(self):
        self.asked = []

    def read(self, size=-1):
        self.asked.append(size)
        return b"x" * (size if size >= 0 else 10 ** 8)


def test_an_undeclared_body_is_read_only_up_to_the_limit(settings):
    settings.FLOWDECK_WEBHOOK_MAX_BYTES = 1024
    request = _EndlessStream()
    with pytest.raises(WebhookRefused) as refused:
        read_body(request)
    assert refused.value.status == 413 and request.asked == [1025]


def test_reused_idempotency_key_with_another_body_is_a_422_naming_the_first_run(client, hooked):
    workflow, url, secret = hooked
    first = post(client, url, secret, {"period": "2026-11"}, key="invoice-42")
    run_id = first.json()["run_id"]
    again = post(client, url, secret, {"period": "2026-12"}, key="invoice-42")
    answer = _assert_refused_as_json(again, 422)
    assert f"started run {run_id}" in answer["error"] and "invoice-42" in answer["error"]
    assert answer["first"]["run_id"] == run_id and answer["first"]["run_url"].endswith(f"/runs/{run_id}/")
    assert Run.objects.filter(workflow=workflow).count() == 1
    assert Run.objects.get(pk=run_id).inputs["period"] == "2026-11"
    assert TriggerEvent.objects.get(workflow=workflow).payload == {"period": "2026-11"}


def test_reused_idempotency_key_with_the_same_json_returns_the_first_run(client, hooked):
    workflow, url, secret = hooked
    first = post(client, url, secret, None, raw=b'{"period": "2026-11", "amount": 3}', key="invoice-42")
    # The same object, spaced and ordered differently, is the same request.
    again = post(client, url, secret, None, raw=b'{"amount":3,"period":"2026-11"}', key="invoice-42")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["duplicate"] is True and again.json()["run_id"] == first.json()["run_id"]
    assert Run.objects.filter(workflow=workflow).count() == 1


def test_reused_idempotency_key_in_a_batch_with_another_body_is_a_422(client, batching):
    workflow, url, secret = batching
    first = post(client, url, secret, {"id": 1}, key="e1")
    assert first.status_code == 202
    again = post(client, url, secret, {"id": 2}, key="e1")
    answer = _assert_refused_as_json(again, 422)
    assert f"joined batch {first.json()['batch_id']}" in answer["error"]
    assert [event.payload for event in TriggerEvent.objects.filter(workflow=workflow)] == [{"id": 1}]
    assert EventBatch.objects.get(workflow=workflow).events.count() == 1


def test_overlong_idempotency_key_is_refused(client, hooked):
    workflow, url, secret = hooked
    response = post(client, url, secret, {"period": "2026-11"}, key="k" * 301)
    assert "at most 255" in _assert_refused_as_json(response, 400)["error"]
    assert not Run.objects.filter(workflow=workflow).exists()


@pytest.mark.parametrize("raw, says", [
    (b'{"id": NaN}', "NaN is not a JSON number"),
    (b'{"id": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"id": 1e999}', "too large"),
    (b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"id": ' + b"9" * 5000 + b"}", "not JSON"),
    (b"\xff\xfe\x00", "not JSON"),
    (b'{"id": "a\\u0000b"}', "NUL"),
    (b'{"id": "\\ud800"}', "surrogate"),
])
def test_body_no_database_can_store_is_a_400(client, batching, raw, says):
    workflow, url, secret = batching
    response = post(client, url, secret, None, raw=raw)
    assert says in _assert_refused_as_json(response, 400)["error"]
    assert not TriggerEvent.objects.filter(workflow=workflow).exists()
