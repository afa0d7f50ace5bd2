"""The workflows REST API: scoped like the pages, saving for authors, validation for editors."""

import pytest

from apps.workflows.models import WorkflowVersion
from apps.workflows.services import save_version

pytestmark = pytest.mark.django_db


def test_list_and_detail_are_scoped_to_the_callers_teams(api_for, author, viewer, outsider, saved_workflow):
    for person in (author, viewer):
        api = api_for(person)
        assert [w["name"] for w in api.get("/api/v1/workflows").json()["results"]] == ["month-end"]
        detail = api.get(f"/api/v1/workflows/{saved_workflow.pk}").json()
        assert detail["team"] == "billing" and detail["current_version"]["number"] == 1
    api = api_for(outsider)
    assert api.get("/api/v1/workflows").json()["results"] == []
    assert api.get(f"/api/v1/workflows/{saved_workflow.pk}").status_code == 404
    assert api.get(f"/api/v1/workflows/{saved_workflow.pk}/versions").status_code == 404


def test_list_filters_by_team_and_search(api_for, author, saved_workflow):
    api = api_for(author)
    assert api.get("/api/v1/workflows", {"search": "month"}).json()["count"] == 1
    assert api.get("/api/v1/workflows", {"team": "people-ops"}).json()["count"] == 0


def test_author_creates_then_versions_then_repeats(api_for, author, simple_spec):
    api = api_for(author)
    created = api.post("/api/v1/workflows", {"team": "billing", "source": simple_spec, "message": "first"}, format="json")
    assert created.status_code == 201 and created.json()["number"] == 1
    assert created.json()["spec"]["name"] == "month-end"
    changed = api.post("/api/v1/workflows", {"team": "billing", "source": simple_spec + "concurrency: 1\n"}, format="json")
    assert changed.status_code == 201 and changed.json()["number"] == 2
    repeated = api.post("/api/v1/workflows", {"team": "billing", "source": simple_spec + "concurrency: 1\n"}, format="json")
    assert repeated.status_code == 200 and repeated.json()["number"] == 2
    assert WorkflowVersion.objects.count() == 2


def test_saving_invalid_yaml_answers_400_with_every_error(api_for, author):
    response = api_for(author).post("/api/v1/workflows", {"team": "billing", "source": "name: x\nsteps: 3\n"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"line": 2, "column": 8, "path": "steps", "message": "must be a list, not a whole number",
                                         "hint": "Write a list here."}]


def test_viewer_cannot_save_through_the_api(api_for, viewer, simple_spec):
    response = api_for(viewer).post("/api/v1/workflows", {"team": "billing", "source": simple_spec}, format="json")
    assert response.status_code == 403
    assert not WorkflowVersion.objects.exists()


def test_saving_into_a_team_you_cannot_see_is_refused(api_for, outsider, team, simple_spec):
    response = api_for(outsider).post("/api/v1/workflows", {"team": "billing", "source": simple_spec}, format="json")
    assert response.status_code == 400 and "among your teams" in response.json()["team"][0]


def test_validate_answers_ok_or_the_located_errors(api_for, viewer, simple_spec):
    api = api_for(viewer)
    good = api.post("/api/v1/workflows/validate", {"source": simple_spec}, format="json").json()
    assert good["ok"] is True and good["errors"] == [] and good["spec"]["steps"][0]["id"] == "extract"
    bad = api.post("/api/v1/workflows/validate", {"source": simple_spec.replace("needs: extract", "needs: extrct")},
                   format="json")
    assert bad.status_code == 200
    assert bad.json()["ok"] is False and bad.json()["spec"] is None
    assert bad.json()["errors"][0]["path"] == "steps[1].needs" and bad.json()["errors"][0]["line"] == 11


def test_versions_version_and_diff(api_for, author, team, saved_workflow, simple_spec):
    save_version(author, team=team, source=simple_spec.replace("seconds: 1", "seconds: 30"), message="slower")
    api = api_for(author)
    versions = api.get(f"/api/v1/workflows/{saved_workflow.pk}/versions").json()["results"]
    assert [(v["number"], v["message"], v["created_by"]) for v in versions] == [(2, "slower", "ada-author"), (1, "first", "ada-author")]
    first = api.get(f"/api/v1/workflows/{saved_workflow.pk}/versions/1").json()
    assert first["source"] == simple_spec and first["spec"]["steps"][1]["with"] == {"seconds": 1}
    diff = api.get(f"/api/v1/workflows/{saved_workflow.pk}/diff", {"from": 1, "to": 2}).json()
    assert {"kind": "added", "old_number": None, "new_number": 12, "text": "    with: {seconds: 30}"} in diff["lines"]
    assert api.get(f"/api/v1/workflows/{saved_workflow.pk}/diff", {"from": 1, "to": 7}).status_code == 404


def test_schema_is_published_without_signing_in(client):
    schema = client.get("/api/v1/workflows/schema").json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "steps" in schema["required"]


def test_openapi_documents_the_workflow_endpoints(client_for, author):
    document = client_for(author).get("/api/schema/", {"format": "json"}).json()
    assert {"/api/v1/workflows", "/api/v1/workflows/validate", "/api/v1/workflows/{id}/diff"} <= set(document["paths"])


def test_openapi_document_builds_without_warnings(tmp_path):
    from django.core.management import call_command

    # Warnings here mean API clients get machine-made names ("State731Enum") or untyped fields.
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "openapi.yaml"))
    assert "RunStateEnum" in (tmp_path / "openapi.yaml").read_text()
