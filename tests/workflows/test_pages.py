"""The workflow pages: scoped to the person's teams, authors edit, errors shown beside the YAML."""

import pytest
from django.urls import reverse

from apps.workflows.models import Workflow
from apps.workflows.services import save_version

pytestmark = pytest.mark.django_db


def test_list_shows_the_teams_workflows_to_author_and_viewer(client_for, author, viewer, saved_workflow):
    for person in (author, viewer):
        response = client_for(person).get(reverse("workflows:list"))
        assert response.status_code == 200
        assert "month-end" in response.content.decode()


def test_list_hides_other_teams_workflows(client_for, outsider, saved_workflow):
    page = client_for(outsider).get(reverse("workflows:list")).content.decode()
    assert "month-end" not in page
    assert "Your teams have no workflows yet" in page


def test_list_filters_by_team_and_searches_by_name(client_for, platform_admin, saved_workflow, other_team):
    client = client_for(platform_admin)
    assert "month-end" in client.get(reverse("workflows:list"), {"q": "month"}).content.decode()
    assert "No workflow matches" in client.get(reverse("workflows:list"), {"q": "payroll"}).content.decode()
    assert "No workflow matches" in client.get(reverse("workflows:list"), {"team": other_team.slug}).content.decode()


def test_list_paginates(client_for, author, team, simple_spec):
    for number in range(26):
        save_version(author, team=team, source=simple_spec.replace("month-end", f"flow-{number:02}"))
    client = client_for(author)
    assert "Page 1 of 2" in client.get(reverse("workflows:list")).content.decode()
    assert "flow-25" in client.get(reverse("workflows:list"), {"page": 2}).content.decode()


def test_detail_shows_steps_source_and_versions_to_a_viewer(client_for, viewer, saved_workflow):
    response = client_for(viewer).get(reverse("workflows:detail", args=[saved_workflow.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "<code>test.spec_sleep</code>" in page and "starts first" in page and "v1" in page
    assert "Edit YAML" not in page


def test_detail_is_404_outside_the_team(client_for, outsider, saved_workflow):
    assert client_for(outsider).get(reverse("workflows:detail", args=[saved_workflow.pk])).status_code == 404


def test_author_creates_a_workflow_from_the_new_page(client_for, author, team, simple_spec):
    response = client_for(author).post(reverse("workflows:new"), {"team": "billing", "source": simple_spec, "message": "hi"})
    workflow = Workflow.objects.get(name="month-end")
    assert response.status_code == 302 and response.url == reverse("workflows:detail", args=[workflow.pk])
    assert workflow.current_version.message == "hi"


def test_invalid_yaml_is_shown_with_located_errors_and_kept(client_for, author, team):
    source = "name: broken\nsteps:\n  - id: a\n    type: test.nope\n    retries: -1\n"
    response = client_for(author).post(reverse("workflows:new"), {"team": "billing", "source": source})
    page = response.content.decode()
    assert response.status_code == 200
    assert "2 problems" in page and "Line 4, column 11" in page and "Line 5, column 14" in page
    assert "type: test.nope\n    retries: -1" in page
    assert not Workflow.objects.exists()


def test_viewer_cannot_open_the_editor(client_for, viewer, saved_workflow):
    client = client_for(viewer)
    assert client.get(reverse("workflows:new")).status_code == 403
    assert client.post(reverse("workflows:edit", args=[saved_workflow.pk]), {"source": "x"}).status_code == 403


def test_author_edits_into_a_new_version(client_for, author, saved_workflow, simple_spec):
    response = client_for(author).post(reverse("workflows:edit", args=[saved_workflow.pk]),
                                       {"source": simple_spec.replace("seconds: 1", "seconds: 5")})
    saved_workflow.refresh_from_db()
    assert response.status_code == 302 and saved_workflow.current_version.number == 2


def test_live_validation_returns_the_error_fragment(client_for, author):
    response = client_for(author).post(reverse("workflows:validate"), {"source": "name: x\nsteps: []\n"},
                                       HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    assert "Line 2" in page and "must not be empty" in page


def test_diff_page_compares_two_chosen_versions(client_for, author, team, saved_workflow, simple_spec):
    save_version(author, team=team, source=simple_spec.replace("seconds: 1", "seconds: 30"))
    page = client_for(author).get(reverse("workflows:diff", args=[saved_workflow.pk]), {"from": 1, "to": 2}).content.decode()
    assert "{seconds: 30}" in page and "+ added" in page and "− removed" in page


def test_diff_page_with_one_version_says_so(client_for, author, saved_workflow):
    page = client_for(author).get(reverse("workflows:diff", args=[saved_workflow.pk])).content.decode()
    assert "only one version" in page


def test_version_page_shows_that_versions_source(client_for, viewer, saved_workflow):
    response = client_for(viewer).get(reverse("workflows:version", args=[saved_workflow.pk, 1]))
    assert response.status_code == 200 and "Closes the month." in response.content.decode()
    assert client_for(viewer).get(reverse("workflows:version", args=[saved_workflow.pk, 9])).status_code == 404


def test_editor_pages_open_for_authors_with_the_yaml_to_edit(client_for, author, saved_workflow):
    client = client_for(author)
    new_page = client.get(reverse("workflows:new")).content.decode()
    assert 'name="source"' in new_page and "name: my-workflow" in new_page and 'hx-post="/workflows/validate/"' in new_page
    edit_page = client.get(reverse("workflows:edit", args=[saved_workflow.pk])).content.decode()
    assert "name: month-end" in edit_page
    assert "Edit YAML" in client.get(reverse("workflows:detail", args=[saved_workflow.pk])).content.decode()
