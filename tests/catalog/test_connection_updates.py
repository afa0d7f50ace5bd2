"""A connection is changed through one service (services.update_connection) from the page, the
API and the Django admin alike: each change is audited once, and a refused change changes nothing."""

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.catalog.models import Connection

pytestmark = pytest.mark.django_db

URL = "sqlite:////data/people.db"


@pytest.fixture
def people_db(make_connection, team):
    return make_connection("people-db", url=URL, team=team)


def actions():
    """What was audited about connections after their creation."""
    return list(AuditEvent.objects.filter(action__startswith="connection.").exclude(action="connection.created")
                .order_by("sequence").values_list("action", flat=True))


def form(team, **changes):
    return {"name": "people-db", "kind": "sql", "url": URL, "team": team.pk, **changes}


def test_an_update_on_the_page_is_audited_once(client_for, platform_admin, people_db, team):
    response = client_for(platform_admin).post(reverse("catalog:connection_edit", args=["people-db"]),
                                               form(team, description="HR records"))
    assert response.status_code == 302
    assert actions() == ["connection.updated"]
    event = AuditEvent.objects.get(action="connection.updated")
    assert (event.before, event.after) == ({"description": ""}, {"description": "HR records"})
    people_db.refresh_from_db()
    assert people_db.description == "HR records"


def test_an_update_through_the_api_is_audited_once_per_kind_of_change(api_for, platform_admin, people_db,
                                                                      other_team):
    api = api_for(platform_admin)
    assert api.patch("/api/v1/connections/people-db", {"description": "HR"}, format="json").status_code == 200
    assert actions() == ["connection.updated"]
    shared = api.patch("/api/v1/connections/people-db", {"description": "HR", "shared_with": [other_team.slug]},
                       format="json")
    assert shared.status_code == 200 and shared.json()["shared_with"] == [other_team.slug]
    assert actions() == ["connection.updated", "connection.sharing_changed"]


def test_a_refused_update_changes_nothing(api_for, client_for, platform_admin, author, people_db, team):
    # Nobody may use a connection without an owner or a sharing: refused as a whole, the description too.
    refused = api_for(platform_admin).patch("/api/v1/connections/people-db", {"description": "HR", "team": None},
                                            format="json")
    assert refused.status_code == 400 and "Say who may use it" in refused.json()["team"][0]
    assert api_for(author).patch("/api/v1/connections/people-db", {"description": "HR"},
                                 format="json").status_code == 403
    page = client_for(author).post(reverse("catalog:connection_edit", args=["people-db"]), form(team, description="HR"))
    assert page.status_code == 403
    unchanged = Connection.objects.get(pk=people_db.pk)
    assert (unchanged.description, unchanged.team, unchanged.updated_at) == ("", team, people_db.updated_at)
    assert actions() == []


def test_saving_a_connection_unchanged_keeps_its_changed_time(client_for, platform_admin, people_db, team):
    # A failure's investigation reads `updated_at` as "changed since the last success".
    assert client_for(platform_admin).post(reverse("catalog:connection_edit", args=["people-db"]),
                                           form(team)).status_code == 302
    assert Connection.objects.get(pk=people_db.pk).updated_at == people_db.updated_at
    assert actions() == []
    client_for(platform_admin).post(reverse("catalog:connection_edit", args=["people-db"]), form(team, description="HR"))
    assert Connection.objects.get(pk=people_db.pk).updated_at > people_db.updated_at
