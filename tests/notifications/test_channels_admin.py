"""Platform admins configure webhook channels in the admin, audited, with the secret never shown back."""

import pytest

from apps.audit.models import AuditEvent
from apps.notifications.models import NotificationChannel

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, platform_admin):
    platform_admin.is_staff = platform_admin.is_superuser = True
    platform_admin.save()
    client.force_login(platform_admin)
    return client


def test_channel_is_created_with_an_encrypted_secret_that_is_never_shown(admin_client):
    response = admin_client.post("/admin/notifications/notificationchannel/add/", {
        "name": "ops-slack", "url": "https://hooks.example.com/T1", "secret": "s3cr3t-hmac",
        "event_kinds": "[]", "enabled": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = NotificationChannel.objects.get(name="ops-slack")
    assert "s3cr3t-hmac" not in channel.secret_encrypted
    page = admin_client.get(f"/admin/notifications/notificationchannel/{channel.pk}/change/").content.decode()
    assert "s3cr3t-hmac" not in page
    assert AuditEvent.objects.filter(object_type="notifications.notificationchannel").exists()
