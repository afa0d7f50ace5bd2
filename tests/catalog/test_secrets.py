"""Connection secrets are encrypted at rest and never shown: not in the database column, API,
pages, admin, audit events or log lines."""

import logging

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db_connection

from apps.audit.models import AuditEvent
from apps.catalog import secrets, services
from apps.catalog.models import Connection
from apps.catalog.secrets import SecretUnreadable

pytestmark = pytest.mark.django_db

PLAIN = "hunter2-very-secret-password"


@pytest.fixture
def warehouse(platform_admin):
    return services.create_connection(platform_admin, name="warehouse", kind="sql",
                                      url="postgres://etl@db.internal:5432/warehouse", secret=PLAIN,
                                      shared_with_all=True)


def _raw_column(pk):
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_secret FROM catalog_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_database_column_holds_ciphertext_that_decrypts_to_the_secret(warehouse):
    stored = _raw_column(warehouse.pk)
    assert PLAIN not in stored and stored
    assert Connection.objects.get(pk=warehouse.pk).reveal_secret() == PLAIN


def test_str_and_repr_do_not_show_the_secret(warehouse):
    assert PLAIN not in str(warehouse) and PLAIN not in repr(warehouse)


def test_rotated_key_still_reads_old_secrets(settings, warehouse):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FLOWDECK_SECRETS_KEY = old_key
    warehouse.set_secret(PLAIN)
    warehouse.save()
    settings.FLOWDECK_SECRETS_KEY = f"{new_key},{old_key}"
    assert Connection.objects.get(pk=warehouse.pk).reveal_secret() == PLAIN
    settings.FLOWDECK_SECRETS_KEY = new_key
    with pytest.raises(SecretUnreadable, match="set the secret again"):
        Connection.objects.get(pk=warehouse.pk).reveal_secret()


def test_without_a_configured_key_the_key_comes_from_secret_key(settings):
    settings.FLOWDECK_SECRETS_KEY = ""
    token = secrets.encrypt(PLAIN)
    settings.SECRET_KEY = "another-secret-key-entirely-different-from-before"
    with pytest.raises(SecretUnreadable):
        secrets.decrypt(token)


def test_audit_events_record_secret_changes_without_the_value(platform_admin, warehouse):
    services.update_connection(platform_admin, warehouse.pk, secret="new-" + PLAIN, description="nightly ETL")
    services.update_connection(platform_admin, warehouse.pk, secret="")
    actions = list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))
    assert actions == ["connection.created", "connection.secret_replaced", "connection.updated",
                       "connection.secret_replaced", "connection.secret_cleared"]
    for event in AuditEvent.objects.all():
        assert PLAIN not in repr(event.before) + repr(event.after)
    assert not Connection.objects.get(pk=warehouse.pk).has_secret


def test_api_never_returns_the_secret(api_for, platform_admin):
    api = api_for(platform_admin)
    created = api.post("/api/v1/connections", {"name": "crm", "kind": "http", "url": "https://crm.example.com",
                                               "secret": PLAIN, "shared_with_all": True}, format="json")
    assert created.status_code == 201 and created.json()["has_secret"] is True
    for response in (created, api.get("/api/v1/connections"), api.get("/api/v1/connections/crm"),
                     api.patch("/api/v1/connections/crm", {"description": "CRM"}, format="json")):
        assert PLAIN not in response.content.decode()
        assert "encrypted_secret" not in response.content.decode()
    assert Connection.objects.get(name="crm").reveal_secret() == PLAIN


def test_pages_show_only_whether_a_secret_is_set(client_for, platform_admin, warehouse):
    client = client_for(platform_admin)
    listing = client.get("/catalog/connections/")
    edit = client.get("/catalog/connections/warehouse/edit/")
    assert "set" in listing.content.decode() and "(set)" in edit.content.decode()
    for page in (listing, edit):
        assert PLAIN not in page.content.decode() and warehouse.encrypted_secret not in page.content.decode()


def test_admin_pages_never_show_the_secret(client_for, platform_admin, warehouse):
    platform_admin.is_staff = platform_admin.is_superuser = True
    platform_admin.save()
    client = client_for(platform_admin)
    for url in ("/admin/catalog/connection/", f"/admin/catalog/connection/{warehouse.pk}/change/"):
        page = client.get(url)
        assert page.status_code == 200
        assert PLAIN not in page.content.decode() and warehouse.encrypted_secret not in page.content.decode()


def test_admin_blank_secret_keeps_the_current_one(client_for, platform_admin, warehouse):
    platform_admin.is_staff = platform_admin.is_superuser = True
    platform_admin.save()
    response = client_for(platform_admin).post(f"/admin/catalog/connection/{warehouse.pk}/change/", {
        "name": "warehouse", "kind": "sql", "url": "postgres://etl@db.internal:5432/warehouse",
        "secret": "", "description": "changed in admin", "shared_with_all": "on"})
    assert response.status_code == 302
    warehouse.refresh_from_db()
    assert warehouse.description == "changed in admin" and warehouse.reveal_secret() == PLAIN
    assert AuditEvent.objects.filter(action="connection.updated", actor=platform_admin).exists()


def test_log_lines_never_hold_the_secret(api_for, client_for, platform_admin, caplog):
    caplog.set_level(logging.DEBUG)
    api_for(platform_admin).post("/api/v1/connections", {"name": "crm", "kind": "http",
                                                         "url": "https://crm.example.com", "secret": PLAIN,
                                                         "shared_with_all": True},
                                 format="json")
    client_for(platform_admin).post("/catalog/connections/crm/edit/", {
        "name": "crm", "kind": "http", "url": "https://crm.example.com", "secret": "page-" + PLAIN,
        "shared_with_all": "on"})
    assert Connection.objects.get(name="crm").reveal_secret() == "page-" + PLAIN
    assert any("connection" in record.getMessage() for record in caplog.records)
    assert PLAIN not in caplog.text


def test_password_in_the_url_is_refused(api_for, platform_admin):
    response = api_for(platform_admin).post("/api/v1/connections", {
        "name": "leaky", "kind": "sql", "url": f"postgres://etl:{PLAIN}@db/warehouse"}, format="json")
    assert response.status_code == 400 and "secret field" in response.json()["url"][0]
    assert not Connection.objects.filter(name="leaky").exists()


def test_admin_adds_a_connection_through_the_services(client_for, platform_admin):
    platform_admin.is_staff = platform_admin.is_superuser = True
    platform_admin.save()
    client = client_for(platform_admin)
    form = client.get("/admin/catalog/connection/add/").content.decode()
    assert 'type="password" name="secret"' in form
    response = client.post("/admin/catalog/connection/add/", {
        "name": "crm", "kind": "http", "url": "https://crm.example.com", "secret": PLAIN, "shared_with_all": "on"})
    assert response.status_code == 302
    assert Connection.objects.get(name="crm").reveal_secret() == PLAIN
    assert list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True)) == [
        "connection.created", "connection.secret_replaced"]
