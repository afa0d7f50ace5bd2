"""Only platform admins manage connections and allowed hosts; everyone else gets 403."""

import pytest

from apps.audit.models import AuditEvent
from apps.catalog import services
from apps.catalog.models import AllowedHost, Connection

pytestmark = pytest.mark.django_db

NEW_CONNECTION = {"name": "crm", "kind": "http", "url": "https://crm.example.com", "secret": "tok",
                  "shared_with_all": True}


@pytest.fixture
def crm(platform_admin):
    return services.create_connection(platform_admin, name="crm", kind="http", url="https://crm.example.com",
                                      shared_with_all=True)


@pytest.mark.parametrize("who", ["author", "operator", "approver", "viewer", "outsider"])
def test_people_who_are_not_platform_admins_get_403(request, client_for, api_for, crm, who):
    person = request.getfixturevalue(who)
    client, api = client_for(person), api_for(person)
    for url in ("/catalog/connections/", "/catalog/connections/new/", "/catalog/connections/crm/edit/"):
        assert client.get(url).status_code == 403
    assert client.post("/catalog/connections/new/", NEW_CONNECTION).status_code == 403
    assert client.post("/catalog/connections/crm/delete/").status_code == 403
    assert client.post("/catalog/allowed-hosts/new/", {"pattern": "evil.example.com"}).status_code == 403
    # Reading the connections their teams may use is allowed, without the URL (test_connection_scoping).
    assert "crm.example.com" not in api.get("/api/v1/connections").content.decode()
    assert api.post("/api/v1/connections", NEW_CONNECTION, format="json").status_code == 403
    assert api.patch("/api/v1/connections/crm", {"allow_writes": True}, format="json").status_code == 403
    assert api.delete("/api/v1/connections/crm").status_code == 403
    assert api.post("/api/v1/allowed-hosts", {"pattern": "evil.example.com"}, format="json").status_code == 403
    assert Connection.objects.get(name="crm").allow_writes is False
    assert not AllowedHost.objects.exists()


def test_services_refuse_non_admins(author):
    with pytest.raises(Exception, match="Only platform admins"):
        services.add_allowed_host(author, pattern="api.example.com")


def test_platform_admin_manages_connections_on_the_pages(client_for, platform_admin):
    client = client_for(platform_admin)
    assert "No connections yet" in client.get("/catalog/connections/").content.decode()
    created = client.post("/catalog/connections/new/", {**NEW_CONNECTION, "description": "CRM API"})
    assert created.status_code == 302 and created["Location"] == "/catalog/connections/"
    assert Connection.objects.get(name="crm").reveal_secret() == "tok"
    client.post("/catalog/connections/crm/edit/", {"name": "crm", "kind": "http", "url": "https://crm.example.com",
                                                   "description": "CRM API", "clear_secret": "on",
                                                   "shared_with_all": "on"})
    assert not Connection.objects.get(name="crm").has_secret
    assert client.post("/catalog/connections/crm/delete/").status_code == 302
    assert not Connection.objects.exists()
    assert list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True)) == [
        "connection.created", "connection.secret_replaced", "connection.secret_cleared", "connection.deleted"]


def test_invalid_connection_form_says_what_to_fix(client_for, platform_admin):
    page = client_for(platform_admin).post("/catalog/connections/new/", {**NEW_CONNECTION, "url": "ftp://crm"})
    assert page.status_code == 200
    assert "starts with http:// or https://" in page.content.decode()
    assert not Connection.objects.exists()


def test_platform_admin_manages_allowed_hosts(client_for, platform_admin):
    client = client_for(platform_admin)
    client.post("/catalog/allowed-hosts/new/", {"pattern": "API.example.com", "note": "ledger"})
    host = AllowedHost.objects.get()
    assert host.pattern == "api.example.com" and not host.allow_private
    assert "api.example.com" in client.get("/catalog/connections/").content.decode()
    refused = client.post("/catalog/allowed-hosts/new/", {"pattern": "https://x.example.com/path"}, follow=True)
    assert "The host was not added" in refused.content.decode()
    client.post(f"/catalog/allowed-hosts/{host.pk}/remove/")
    assert not AllowedHost.objects.exists()
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["allowed_host.removed", "allowed_host.added"]


def test_platform_admin_manages_connections_through_the_api(api_for, platform_admin):
    api = api_for(platform_admin)
    assert api.post("/api/v1/connections", NEW_CONNECTION, format="json").status_code == 201
    assert api.post("/api/v1/connections", NEW_CONNECTION, format="json").status_code == 400
    changed = api.patch("/api/v1/connections/crm", {"allow_writes": True, "secret": ""}, format="json").json()
    assert changed["allow_writes"] is True and changed["has_secret"] is False
    assert api.delete("/api/v1/connections/crm").status_code == 204
    host = api.post("/api/v1/allowed-hosts", {"pattern": "*.example.com"}, format="json").json()
    assert api.delete(f"/api/v1/allowed-hosts/{host['id']}").status_code == 204
