"""Team scoping rules: members see their team's things, outsiders get 404, roles gate actions."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from apps.accounts.access import get_for_user, has_role, scope_to_user, visible_team_ids
from apps.accounts.models import Team
from apps.workflows.models import Workflow


@pytest.fixture
def billing_workflow(team, author):
    return Workflow.objects.create(team=team, name="invoicing", created_by=author)


def test_member_sees_their_team_and_outsider_does_not(team, other_team, author, outsider):
    assert visible_team_ids(author) == {team.pk}
    assert visible_team_ids(outsider) == {other_team.pk}


def test_platform_admin_sees_every_team(team, other_team, platform_admin):
    assert visible_team_ids(platform_admin) is None
    assert set(scope_to_user(Team.objects.all(), platform_admin, "pk")) == {team, other_team}


def test_outsider_gets_404_for_another_teams_workflow(billing_workflow, outsider):
    with pytest.raises(Http404):
        get_for_user(Workflow.objects.all(), outsider, billing_workflow.pk)


def test_viewer_sees_but_cannot_act_as_author(billing_workflow, viewer):
    assert get_for_user(Workflow.objects.all(), viewer, billing_workflow.pk) == billing_workflow
    with pytest.raises(PermissionDenied):
        get_for_user(Workflow.objects.all(), viewer, billing_workflow.pk, role="author")


def test_author_may_also_operate_but_not_approve(team, author):
    assert has_role(author, team, "author")
    assert has_role(author, team, "operator")
    assert not has_role(author, team, "approver")


def test_garbage_primary_key_is_a_404_not_a_crash(billing_workflow, author):
    with pytest.raises(Http404):
        get_for_user(Workflow.objects.all(), author, "not-a-number")


def test_a_page_reads_the_persons_memberships_once(client_for, author, team):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client_for(author).get("/runs/").status_code == 200
    membership_reads = [query["sql"] for query in queries if 'FROM "accounts_membership"' in query["sql"]]
    assert len(membership_reads) == 1
    assert "JOIN" not in membership_reads[0]  # no ordering by team and user names


def test_a_role_granted_or_revoked_is_seen_by_the_same_user_object(team, other_team, author, platform_admin):
    from apps.accounts.services import grant_role, revoke_role

    assert not has_role(author, other_team, "operator")
    grant_role(platform_admin, user=author, team=other_team, role="operator")
    assert has_role(author, other_team, "operator") and visible_team_ids(author) == {team.pk, other_team.pk}
    revoke_role(platform_admin, user=author, team=other_team, role="operator")
    assert not has_role(author, other_team, "operator") and visible_team_ids(author) == {team.pk}
