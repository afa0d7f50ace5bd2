"""Single sign-on on the Flowdeck side: the group map applied at each sign-in through the
accounts services, only the map's own grants taken back, every change audited; and local
passwords that can be turned off while API tokens keep working.

The protocol itself runs against a real provider in tests/browser/test_sso.py.
"""

import json

import pytest
from django.urls import reverse

from apps.accounts.models import ApproverGroup, Membership, SsoIdentity, User
from apps.accounts.services import grant_role, sign_in_with_provider
from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD

ISSUER = "https://id.example.com"
GROUP_MAP = {
    "billing-devs": {"teams": {"billing": ["author", "operator"]}},
    "billing-leads": {"teams": {"billing": ["approver"]}, "approver_groups": ["billing-approvers"]},
    "ghost-team": {"teams": {"no-such-team": ["author"]}},
}


@pytest.fixture(autouse=True)
def group_map(settings):
    settings.FLOWDECK_OIDC_GROUP_MAP = json.dumps(GROUP_MAP)


@pytest.fixture
def billing_approvers(team):
    return ApproverGroup.objects.create(slug="billing-approvers", name="Billing approvers", team=team)


def sign_in(groups, *, sub="ada-sub", **claims):
    claims = {"sub": sub, "preferred_username": "ada", "email": "ada@example.com", "email_verified": True} | claims
    return sign_in_with_provider(issuer=ISSUER, claims=claims, groups=groups)


def roles(user):
    return set(Membership.objects.filter(user=user).values_list("team__slug", "role"))


def audit(*actions):
    return list(AuditEvent.objects.filter(action__in=actions).order_by("sequence")
                .values_list("action", "team_label", "after", "before"))


def test_first_sign_in_creates_the_person_with_the_roles_and_approver_groups_of_their_groups(team, billing_approvers):
    user = sign_in(["billing-devs", "billing-leads", "ghost-team", "wifi-users"])
    assert user.username == "ada" and not user.has_usable_password()
    assert roles(user) == {("billing", "author"), ("billing", "operator"), ("billing", "approver")}
    assert list(billing_approvers.members.all()) == [user]
    granted = audit("membership.granted", "approver_group.member_added")
    assert {(action, team_label, after.get("role")) for action, team_label, after, _ in granted} == {
        ("membership.granted", "billing", "author"), ("membership.granted", "billing", "operator"),
        ("membership.granted", "billing", "approver"), ("approver_group.member_added", "billing", None)}
    assert granted[0][2]["source"] == "single sign-on group map"
    assert granted[0][2]["groups"] == ["billing-devs", "billing-leads", "ghost-team"]  # not wifi-users
    assert SsoIdentity.objects.get(user=user).groups == ["billing-devs", "billing-leads", "ghost-team", "wifi-users"]


def test_leaving_a_group_loses_its_role_at_next_sign_in_but_roles_given_by_hand_stay(team, billing_approvers):
    user = sign_in(["billing-devs", "billing-leads"])
    grant_role(None, user=user, team=team, role="viewer")  # by hand: not the map's
    events_before = AuditEvent.objects.count()

    same = sign_in(["billing-devs"])

    assert same == user and User.objects.count() == 1
    assert roles(user) == {("billing", "author"), ("billing", "operator"), ("billing", "viewer")}
    assert not billing_approvers.members.exists()
    removed = audit("membership.revoked", "approver_group.member_removed")
    assert [(action, before.get("role")) for action, _, _, before in removed] == [
        ("membership.revoked", "approver"), ("approver_group.member_removed", None)]
    assert AuditEvent.objects.count() == events_before + 2


def test_a_sign_in_that_changes_nothing_writes_no_audit_event(team, billing_approvers):
    sign_in(["billing-devs"])
    events_before = AuditEvent.objects.count()
    sign_in(["billing-devs", "wifi-users"])
    assert AuditEvent.objects.count() == events_before


def test_a_role_held_by_hand_before_the_map_granted_it_is_never_taken_by_the_map(team, make_user):
    ada = make_user("ada")  # a local account: the provider verified the same email
    grant_role(None, user=ada, team=team, role="author")
    assert sign_in(["billing-devs"]) == ada
    assert roles(ada) == {("billing", "author"), ("billing", "operator")}
    sign_in([])
    assert roles(ada) == {("billing", "author")}


def test_a_role_granted_by_hand_after_the_map_gave_it_becomes_the_admins(team):
    user = sign_in(["billing-devs"])
    grant_role(None, user=user, team=team, role="operator")
    sign_in([])
    assert roles(user) == {("billing", "operator")}


def test_an_unverified_email_does_not_join_a_local_account(make_user, team):
    local = make_user("ada")
    user = sign_in(["billing-devs"], email_verified=False)
    assert user != local and user.username == "ada-2"
    assert roles(local) == set()
    assert SsoIdentity.objects.get(user=user).subject == "ada-sub"


def test_password_sign_in_can_be_turned_off_and_api_tokens_keep_working(settings, client, author, api_for):
    client.force_login(author)  # a session from a password sign-in, before passwords were turned off
    settings.FLOWDECK_LOCAL_LOGIN = False
    settings.FLOWDECK_OIDC_ISSUER = ISSUER
    assert client.get(reverse("home")).status_code == 302  # it ends: sign in through the provider
    page = client.get(reverse("accounts:login")).content.decode()
    assert "Sign in with single sign-on" in page and 'name="password"' not in page

    refused = client.post(reverse("accounts:login"), {"username": author.username, "password": PASSWORD})
    assert refused.status_code == 403
    assert "Password sign-in is turned off" in refused.content.decode()
    assert client.get(reverse("home")).status_code == 302  # still signed out
    assert not client.login(username=author.username, password=PASSWORD)  # the admin's form too

    response = api_for(author).get("/api/v1/me")
    assert response.status_code == 200 and response.json()["username"] == author.username


def test_an_unreachable_provider_sends_the_person_back_to_the_login_page_with_a_reason(settings, client, db):
    settings.FLOWDECK_OIDC_ISSUER = "http://127.0.0.1:9"  # the discard port: nothing listens
    response = client.get(reverse("accounts:sso_start"), follow=True)
    assert response.redirect_chain == [(reverse("accounts:login"), 302)]
    assert "provider cannot be reached right now" in response.content.decode()
    assert not User.objects.exists()


def test_single_sign_on_pages_are_not_found_until_it_is_configured(client, db):
    assert client.get(reverse("accounts:sso_start")).status_code == 404
    assert client.get(reverse("accounts:sso_callback"), {"code": "c", "state": "s"}).status_code == 404


def test_a_callback_with_a_forged_state_signs_nobody_in_and_says_so(settings, client, db):
    settings.FLOWDECK_OIDC_ISSUER = ISSUER
    session = client.session
    session["oidc_states"] = {"the-real-state": {"nonce": "n", "code_verifier": "v"}}
    session.save()
    response = client.get(reverse("accounts:sso_callback"), {"code": "stolen", "state": "forged"}, follow=True)
    assert response.redirect_chain == [(reverse("accounts:login"), 302)]
    assert "Single sign-on did not sign you in" in response.content.decode()
    assert client.get(reverse("home")).status_code == 302
    assert not User.objects.exists()
