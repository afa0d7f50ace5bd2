"""The catalog pages: every step type listed, filtered and searched; a type's page documents its
parameters and gives a YAML example to paste."""

import pytest
import yaml

pytestmark = pytest.mark.django_db


def test_list_shows_every_type_with_risk_queue_and_timeout(client_for, viewer):
    client = client_for(viewer)
    page = client.get("/catalog/")
    assert page.status_code == 200
    # Test step types registered by other test modules may push built-ins onto later pages.
    pages = [page.context["page"]]
    while pages[-1].has_next():
        pages.append(client.get("/catalog/", {"page": pages[-1].next_page_number()}).context["page"])
    text = "".join(client.get("/catalog/", {"page": p.number}).content.decode() for p in pages)
    for name in ("http.request", "sql.query", "sql.execute", "data.check", "notify", "approval.gate", "wait"):
        assert f"<code>{name}</code>" in text
    assert 'class="badge risk-high">high risk' in text and "330 s" in text and "<code>steps</code>" in text


def test_list_filters_by_risk_and_search(client_for, viewer):
    client = client_for(viewer)
    high = client.get("/catalog/", {"risk": "high"}).content.decode()
    assert "<code>sql.execute</code>" in high and "<code>sql.query</code>" not in high
    found = client.get("/catalog/", {"q": "quality"}).content.decode()
    assert "<code>data.check</code>" in found and "<code>echo</code>" not in found
    nothing = client.get("/catalog/", {"q": "teleport"}).content.decode()
    assert "No step type matches" in nothing and "Clear the search" in nothing


def test_htmx_filter_returns_only_the_table(client_for, viewer):
    fragment = client_for(viewer).get("/catalog/", {"q": "sql"}, HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="types">') and "<h1>" not in fragment


def test_detail_documents_parameters_and_gives_a_pasteable_example(client_for, author):
    page = client_for(author).get("/catalog/types/http.request/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "<code>expect_status</code>" in text and "list of integer" in text
    assert "Statuses that count as success" in text and "Idempotency-Key" in text
    example = yaml.safe_load(page.context["example"])
    assert example[0]["type"] == "http.request" and example[0]["with"]["connection"] == "ledger-api"


def test_detail_flattens_nested_parameters(client_for, author):
    text = client_for(author).get("/catalog/types/data.check/").content.decode()
    for name in ("source.file", "source.connection", "checks.min_rows", "checks.max_null_ratio"):
        assert f"<code>{name}</code>" in text


def test_unknown_type_is_404(client_for, author):
    assert client_for(author).get("/catalog/types/teleport/").status_code == 404


def test_pages_need_sign_in(client):
    response = client.get("/catalog/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_api_lists_and_describes_step_types(api_for, viewer):
    api = api_for(viewer)
    listing = api.get("/api/v1/step-types").json()
    assert {"name": "sql.execute", "risk": "high"}.items() <= next(
        t for t in listing["results"] if t["name"] == "sql.execute").items()
    detail = api.get("/api/v1/step-types/data.check").json()
    assert detail["params_schema"]["additionalProperties"] is False
    assert detail["example"]["checks"]["min_rows"] == 1000 and "type: data.check" in detail["example_yaml"]
    assert "**Errors:**" in detail["doc"]
    assert api.get("/api/v1/step-types/teleport").status_code == 404


def test_alternative_parameter_forms_say_which_form_needs_them(client_for, author):
    text = client_for(author).get("/catalog/types/data.check/").content.decode()
    assert "required in form 1 of 2" in text and "optional in form 2 of 2" in text


def test_doc_markup_is_escaped():
    from apps.catalog.templatetags.catalog_doc import step_doc

    html = step_doc("Runs **fast** with `<script>`.\n\n- one\n- two")
    assert html == ("<p>Runs <strong>fast</strong> with <code>&lt;script&gt;</code>.</p>\n"
                    "<ul><li>one</li><li>two</li></ul>")
