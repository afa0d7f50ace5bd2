"""Platform admins grant and revoke risk waivers in the admin, audited."""

import pytest

from apps.approvals.models import RiskWaiver
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, platform_admin):
    platform_admin.is_staff = platform_admin.is_superuser = True
    platform_admin.save()
    client.force_login(platform_admin)
    return client


def test_waiver_is_granted_and_revoked_through_the_audited_services(admin_client, team):
    response = admin_client.post("/admin/approvals/riskwaiver/add/", {
        "team": team.pk, "step_type": "sql.execute", "reason": "Nightly load writes only to staging.",
    })
    assert response.status_code == 302
    waiver = RiskWaiver.objects.get(team=team, step_type="sql.execute")
    assert AuditEvent.objects.filter(action="risk_waiver.granted").count() == 1
    admin_client.post(f"/admin/approvals/riskwaiver/{waiver.pk}/delete/", {"post": "yes"})
    assert not RiskWaiver.objects.exists()
    assert AuditEvent.objects.filter(action="risk_waiver.revoked").count() == 1
