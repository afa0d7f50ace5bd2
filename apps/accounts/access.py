"""Team scoping: who may see and do what.

Rules, used by every page and API call:
- a person sees only objects of teams they belong to (any role); outside them, 404;
- acting needs a role in the object's team (author edits workflows, operator runs and triages,
  approver decides); seeing but lacking the role gives 403 (PermissionDenied);
- platform admins see and may do everything.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from apps.accounts.models import Membership, Role, Team

# Which roles count as having another: an author can also run what they wrote.
IMPLIED_ROLES = {
    Role.AUTHOR: {Role.AUTHOR},
    Role.OPERATOR: {Role.OPERATOR, Role.AUTHOR},
    Role.APPROVER: {Role.APPROVER},
    Role.VIEWER: {Role.VIEWER, Role.AUTHOR, Role.OPERATOR, Role.APPROVER},
}


def roles_by_team(user) -> dict[int, set[str]]:
    """The roles `user` holds, by team id: read once per user object. A request's user is loaded
    for that request, so a page asks the database once however many checks it makes; code that
    changes memberships and keeps using the same object calls `forget_roles`."""
    try:
        return user._roles_by_team
    except AttributeError:
        pass
    roles: dict[int, set[str]] = {}
    # No ordering: Membership's default one joins user and team for nothing here.
    for team_id, role in Membership.objects.filter(user=user).order_by().values_list("team_id", "role"):
        roles.setdefault(team_id, set()).add(role)
    user._roles_by_team = roles
    return roles


def forget_roles(user) -> None:
    """Drop what `roles_by_team` read for `user`, after its memberships changed."""
    try:
        del user._roles_by_team
    except AttributeError:
        pass


def visible_team_ids(user) -> set[int] | None:
    """Ids of the teams `user` may see; None means all (platform admin)."""
    if not user.is_authenticated:
        return set()
    if user.is_platform_admin:
        return None
    return set(roles_by_team(user))


def team_ids_with_role(user, role: str) -> set[int] | None:
    """Ids of the teams where `user` holds `role` (or a role that implies it); None means all."""
    if not user.is_authenticated:
        return set()
    if user.is_platform_admin:
        return None
    implied = IMPLIED_ROLES[Role(role)]
    return {team_id for team_id, roles in roles_by_team(user).items() if roles & implied}


def has_role(user, team: Team | int, role: str) -> bool:
    team_id = team if isinstance(team, int) else team.pk
    allowed = team_ids_with_role(user, role)
    return allowed is None or team_id in allowed


def scope_to_user(queryset: QuerySet, user, team_field: str = "team") -> QuerySet:
    """Filter `queryset` to the objects of the teams `user` may see."""
    team_ids = visible_team_ids(user)
    if team_ids is None:
        return queryset
    return queryset.filter(**{f"{team_field}__in": team_ids})


def visible_teams(user) -> QuerySet:
    return scope_to_user(Team.objects.all(), user, team_field="pk")


def get_for_user(queryset: QuerySet, user, pk, *, team_field: str = "team", role: str | None = None):
    """The object `pk` if `user` may see it (else 404) and, when `role` is given, holds it (else 403)."""
    try:
        obj = scope_to_user(queryset, user, team_field).get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No {queryset.model._meta.verbose_name} {pk} in your teams.") from None
    if role is not None:
        team_id = _team_id(obj, team_field)
        if not has_role(user, team_id, role):
            raise PermissionDenied(f"You need the {role} role in this team to do that.")
    return obj


def require_platform_admin(user, to: str = "do that") -> None:
    """The one platform-admin guard, for pages, the API and domain functions (`user` may be None)."""
    if not (user is not None and user.is_authenticated and user.is_platform_admin):
        raise PermissionDenied(f"Only platform admins can {to}.")


def _team_id(obj, team_field: str) -> int:
    value = obj
    for part in team_field.split("__"):
        value = getattr(value, part if part != "pk" else "pk")
    return value if isinstance(value, int) else value.pk
