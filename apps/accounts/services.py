"""Domain functions of the accounts app: the only code that writes teams, roles and tokens."""

from django.db import transaction
from django.utils import timezone

from apps.accounts.access import forget_roles, require_platform_admin
from apps.accounts.models import ApiToken, ApproverGroup, Membership, Team, User
from apps.audit.log import record


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
