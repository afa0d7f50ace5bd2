import pytest

from apps.incidents import services
from apps.incidents.models import Incident, IncidentStatus, RootCauseCategory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.knowledge.urls")]


@pytest.fixture
def billing_incident(team, operator):
    return services.open_incident(operator, team=team, title="Invoice export failed", error_message="HTTP 429")


@pytest.fixture
def shared_incident():
    return Incident.objects.create(title="Imported: DNS outage", description="NXDOMAIN", status=IncidentStatus.RESOLVED,
                                   root_cause_category=RootCauseCategory.objects.get(slug="dns"))


def test_list_shows_own_team_and_shared_history_but_not_other_teams(client_for, outsider, billing_incident,
                                                                     shared_incident):
    page = client_for(outsider).get("/incidents/")
    assert page.status_code == 200
    assert "Imported: DNS outage" in page.content.decode()
    assert "Invoice export failed" not in page.content.decode()


def test_outsider_gets_404_for_another_teams_incident(client_for, outsider, billing_incident):
    assert client_for(outsider).get(f"/incidents/{billing_incident.pk}/").status_code == 404
    assert client_for(outsider).post(f"/incidents/{billing_incident.pk}/resolve/").status_code == 404


def test_list_filters_by_status_and_category(client_for, viewer, team, billing_incident, shared_incident):
    client = client_for(viewer)
    resolved = client.get("/incidents/?status=resolved").content.decode()
    assert "Imported: DNS outage" in resolved and "Invoice export failed" not in resolved
    by_category = client.get("/incidents/?category=dns&team=shared").content.decode()
    assert "Imported: DNS outage" in by_category
    assert "No incidents match" in client.get("/incidents/?team=billing&status=resolved").content.decode()


def test_list_is_paginated(client_for, viewer, team, operator):
    for n in range(30):
        services.open_incident(operator, team=team, title=f"Failure {n}")
    page = client_for(viewer).get("/incidents/").content.decode()
    assert "Page 1 of 2" in page
    second = client_for(viewer).get("/incidents/?page=2").content.decode()
    assert "Failure 0<" in second and "Failure 29<" not in second


def test_viewer_sees_the_incident_but_cannot_resolve_it(client_for, viewer, billing_incident):
    client = client_for(viewer)
    page = client.get(f"/incidents/{billing_incident.pk}/")
    assert page.status_code == 200
    assert "Only operators of Billing" in page.content.decode()
    response = client.post(f"/incidents/{billing_incident.pk}/resolve/", {"category": 1})
    assert response.status_code == 403


def test_operator_takes_ownership_then_resolves_with_cause_and_fix(client_for, operator, billing_incident,
                                                                   django_capture_on_commit_callbacks, fake_encoder):
    client = client_for(operator)
    assert client.post(f"/incidents/{billing_incident.pk}/own/").status_code == 302
    billing_incident.refresh_from_db()
    assert billing_incident.status == IncidentStatus.INVESTIGATING and billing_incident.owner == operator

    category = RootCauseCategory.objects.get(slug="rate-limited")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/incidents/{billing_incident.pk}/resolve/", {
            "category": category.pk, "root_cause_description": "32 parallel chunks exceeded the quota",
            "resolution": "Lowered concurrency to 8"})
    assert response.status_code == 302
    billing_incident.refresh_from_db()
    assert billing_incident.status == IncidentStatus.RESOLVED
    assert billing_incident.root_cause_category == category
    assert "Lowered concurrency" in client.get(f"/incidents/{billing_incident.pk}/").content.decode()

    again = client.post(f"/incidents/{billing_incident.pk}/resolve/", {
        "category": category.pk, "root_cause_description": "x", "resolution": "y"})
    assert again.status_code == 409
    assert "already resolved" in again.content.decode()


def test_shared_history_can_only_be_changed_by_a_platform_admin(client_for, operator, shared_incident):
    assert client_for(operator).post(f"/incidents/{shared_incident.pk}/own/").status_code == 403


def test_operator_opens_an_incident_by_hand(client_for, operator, team):
    response = client_for(operator).post("/incidents/new/", {"team": team.pk, "title": "Ledger totals wrong"})
    incident = Incident.objects.get(title="Ledger totals wrong")
    assert response.status_code == 302 and response.url == f"/incidents/{incident.pk}/"
    assert incident.owner == operator and incident.team == team


def test_categories_page_is_for_platform_admins_who_can_add_one(client_for, operator, platform_admin):
    assert client_for(operator).get("/incidents/categories/").status_code == 403
    response = client_for(platform_admin).post("/incidents/categories/", {
        "slug": "human-error", "name": "Human error", "description": "Someone ran the wrong command.", "is_active": "on"})
    assert response.status_code == 302
    assert RootCauseCategory.objects.get(slug="human-error").description == "Someone ran the wrong command."


def test_api_lists_only_visible_incidents_and_refuses_resolving_without_role(api_for, outsider, viewer,
                                                                              billing_incident):
    assert api_for(outsider).get("/api/v1/incidents").json()["count"] == 0
    assert api_for(outsider).get(f"/api/v1/incidents/{billing_incident.pk}").status_code == 404
    response = api_for(viewer).post(f"/api/v1/incidents/{billing_incident.pk}/resolve",
                                    {"category": "network", "root_cause_description": "x", "resolution": "y"})
    assert response.status_code == 403
