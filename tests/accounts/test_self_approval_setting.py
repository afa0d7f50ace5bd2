"""Only platform admins relax separation of duties for a group, and it is audited."""

import pytest
from django.core.exceptions import PermissionDenied

from apps.accounts.services import set_self_approval
from apps.audit.models import AuditEvent


def test_platform_admin_allows_self_approval_and_it_is_audited(approver_group, platform_admin):
    set_self_approval(platform_admin, approver_group, True)
    approver_group.refresh_from_db()
    assert approver_group.allow_self_approval
    event = AuditEvent.objects.get(action="approver_group.self_approval_changed")
    assert event.actor == platform_admin
    assert event.before == {"allow_self_approval": False} and event.after == {"allow_self_approval": True}


def test_team_approver_cannot_allow_self_approval(approver_group, approver):
    with pytest.raises(PermissionDenied):
        set_self_approval(approver, approver_group, True)
    approver_group.refresh_from_db()
    assert not approver_group.allow_self_approval
