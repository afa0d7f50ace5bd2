"""Domain functions of the accounts app: the only code that writes teams, roles and tokens."""

import re

from django.db import transaction
from django.utils import timezone

from apps.accounts import group_map
from apps.accounts.access import forget_roles, require_platform_admin
from apps.accounts.models import (
    ApiToken,
    ApproverGroup,
    Membership,
    SsoIdentity,
    Team,
    User,
)
from apps.audit.log import batched, record


class AccountsError(Exception):
    """A change to teams, roles or tokens that is not allowed."""


@transaction.atomic
def create_team(actor, *, slug: str, name: str, description: str = "") -> Team:
    team = Team.objects.create(slug=slug, name=name, description=description)
    record(actor, "team.created", team, team=team, after={"slug": slug, "name": name})
    return team


@transaction.atomic
def grant_role(actor, *, user: User, team: Team, role: str) -> Membership:
    membership, created = Membership.objects.get_or_create(user=user, team=team, role=role)
    forget_roles(user)
    # Granted by hand, the role is no longer the group map's to take away.
    for identity in SsoIdentity.objects.select_for_update().filter(user=user):
        if [team.pk, role] in identity.mapped_roles:
            identity.mapped_roles.remove([team.pk, role])
            identity.save(update_fields=["mapped_roles"])
    if created:
        record(actor, "membership.granted", membership, team=team, after={"user": user.username, "role": role})
    return membership


@transaction.atomic
def revoke_role(actor, *, user: User, team: Team, role: str) -> None:
    deleted, _ = Membership.objects.filter(user=user, team=team, role=role).delete()
    forget_roles(user)
    if deleted:
        record(actor, "membership.revoked", object_type="accounts.membership", object_id=f"{user.pk}:{team.pk}",
               team=team, before={"user": user.username, "role": role})


@transaction.atomic
def create_approver_group(actor, *, slug: str, name: str, team: Team, members=(),
                          allow_self_approval: bool = False) -> ApproverGroup:
    group = ApproverGroup.objects.create(slug=slug, name=name, team=team, allow_self_approval=allow_self_approval)
    group.members.set(members)
    record(actor, "approver_group.created", group, team=team, after={
        "slug": slug, "members": sorted(m.username for m in members), "allow_self_approval": allow_self_approval,
    })
    return group


@transaction.atomic
def set_self_approval(actor, group: ApproverGroup, allowed: bool) -> ApproverGroup:
    """Allow or forbid self-approval in `group`: platform admins only, always audited."""
    require_platform_admin(actor, to="allow self-approval")
    group = ApproverGroup.objects.select_for_update().get(pk=group.pk)
    before = group.allow_self_approval
    group.allow_self_approval = allowed
    group.save(update_fields=["allow_self_approval"])
    record(actor, "approver_group.self_approval_changed", group, team=group.team,
           before={"allow_self_approval": before}, after={"allow_self_approval": allowed})
    return group


@transaction.atomic
def issue_token(user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the key, which is never retrievable again."""
    key = ApiToken.new_key()
    token = ApiToken.objects.create(user=user, name=name, prefix=key[: ApiToken.PREFIX_LENGTH],
                                    key_hash=ApiToken.hash_key(key))
    record(user, "api_token.issued", token, after={"name": name, "prefix": token.prefix})
    return token, key


@transaction.atomic
def revoke_token(actor, token_id: int) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token_id)
    if token.user_id != actor.pk and not actor.is_platform_admin:
        raise AccountsError("You can only revoke your own tokens.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(actor, "api_token.revoked", token, before={"prefix": token.prefix})
    return token


# Batched: a sign-in may grant and revoke roles in several teams, and appending each event at once
# would lock those teams' chain heads in the order of the changes (grants, then revokes, then
# groups), so two sign-ins could lock two heads in opposite orders and deadlock; the batch takes
# them once each, in one order, for the commit only.
@batched()
def sign_in_with_provider(*, issuer: str, claims: dict, groups: list[str]) -> User:
    """The person the provider vouched for (found by issuer and subject, else by verified email,
    else created), with the team roles and approver groups of `groups` applied through the group
    map: what the map granted before and no longer does is removed, each change audited."""
    identity = (SsoIdentity.objects.select_for_update().select_related("user")
                .filter(issuer=issuer, subject=claims["sub"]).first())
    if identity is None:
        identity = SsoIdentity.objects.create(user=_user_for_new_identity(claims), issuer=issuer,
                                              subject=claims["sub"])
    user = identity.user
    _refresh_profile(user, claims)
    mapping = group_map.configured()
    access = group_map.access_for(mapping, groups)
    # Only the groups the map knows: a provider may send hundreds, and the rest grant nothing.
    context = {"user": user.username, "source": "single sign-on group map",
               "groups": sorted(group for group in groups if group in mapping)}
    _apply_mapped_roles(identity, access, context)
    _apply_mapped_approver_groups(identity, access, context)
    identity.groups = sorted(groups)
    identity.last_sign_in_at = timezone.now()
    identity.save()
    forget_roles(user)
    return user


def _apply_mapped_roles(identity: SsoIdentity, access: group_map.Access, context: dict) -> None:
    teams = {team.slug: team for team in Team.objects.filter(slug__in={slug for slug, _ in access.roles})}
    wanted = {(teams[slug].pk, role) for slug, role in access.roles if slug in teams}
    held = set(Membership.objects.filter(user=identity.user).values_list("team_id", "role"))
    mapped = {tuple(pair) for pair in identity.mapped_roles}
    for team_id, role in sorted(wanted - held):
        membership = Membership.objects.create(user=identity.user, team_id=team_id, role=role)
        record(None, "membership.granted", membership, team=membership.team, after=context | {"role": role})
        mapped.add((team_id, role))
    for team_id, role in sorted(mapped - wanted):
        team = Team.objects.filter(pk=team_id).first()
        deleted, _ = Membership.objects.filter(user=identity.user, team_id=team_id, role=role).delete()
        if deleted and team is not None:
            record(None, "membership.revoked", object_type="accounts.membership",
                   object_id=f"{identity.user.pk}:{team_id}", team=team, before=context | {"role": role})
        mapped.discard((team_id, role))
    identity.mapped_roles = sorted([team_id, role] for team_id, role in mapped)


def _apply_mapped_approver_groups(identity: SsoIdentity, access: group_map.Access, context: dict) -> None:
    wanted = {group.pk: group for group in ApproverGroup.objects.filter(slug__in=access.approver_groups)}
    held = set(identity.user.approver_groups.values_list("pk", flat=True))
    mapped = set(identity.mapped_approver_groups)
    for group_id in sorted(wanted.keys() - held):
        group = wanted[group_id]
        group.members.add(identity.user)
        record(None, "approver_group.member_added", group, team=group.team, after=context)
        mapped.add(group_id)
    for group in ApproverGroup.objects.filter(pk__in=mapped - wanted.keys()).select_related("team"):
        group.members.remove(identity.user)
        record(None, "approver_group.member_removed", group, team=group.team, before=context)
    identity.mapped_approver_groups = sorted(mapped & wanted.keys())


def _user_for_new_identity(claims: dict) -> User:
    """A first sign-in joins the local account with the same email when the provider verified
    that email (how a small install moves to single sign-on); otherwise it creates a person."""
    email = claims.get("email") or ""
    if email and claims.get("email_verified") is True:
        matches = list(User.objects.filter(email__iexact=email)[:2])
        if len(matches) == 1:
            return matches[0]
    user = User(username=_free_username(claims), email=email)
    user.set_unusable_password()
    user.save()
    return user


def _free_username(claims: dict) -> str:
    wanted = claims.get("preferred_username") or (claims.get("email") or "").split("@")[0] or claims["sub"]
    base = re.sub(r"[^\w.@+-]", "-", str(wanted))[:140] or "person"
    username, suffix = base, 1
    while User.objects.filter(username__iexact=username).exists():
        suffix += 1
        username = f"{base}-{suffix}"
    return username


def _refresh_profile(user: User, claims: dict) -> None:
    """Name and email follow the provider, which is where people change them."""
    first, last = claims.get("given_name"), claims.get("family_name")
    if first is None and claims.get("name"):
        first, _, last = claims["name"].partition(" ")
    changes = {"first_name": first, "last_name": last, "email": claims.get("email")}
    changed = [field for field, value in changes.items() if value is not None and getattr(user, field) != value]
    for field in changed:
        setattr(user, field, changes[field])
    if changed:
        user.save(update_fields=changed)
