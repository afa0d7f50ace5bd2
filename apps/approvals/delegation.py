"""Delegation of decisions while someone is away: the rows, their rules, and who holds one now.

A delegation lets its delegate decide what its delegator may decide, in the delegate's own name
"on behalf of" the delegator, for a period and optionally one team. It never passes on (nobody
decides through a delegation someone delegated to them), and the delegate stays bound by
separation of duties; `approvals.services.refusal` applies both when a decision is taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.access import team_ids_with_role, visible_team_ids
from apps.accounts.models import Role, Team, User
from apps.approvals.models import Delegation
from apps.audit.log import record

# An out-of-office period, not a standing transfer of duties.
MAX_PERIOD = timedelta(days=90)


class DelegationRefused(ValueError):
    """A delegation that cannot be created as asked; the message says what to change."""


def holding(at: datetime | None = None) -> QuerySet:
    """Delegations in force at `at` (now by default)."""
    at = at or timezone.now()
    return Delegation.objects.filter(starts_at__lte=at, ends_at__gt=at, ended_at__isnull=True)


def _covering(team_id: int) -> Q:
    return Q(team__isnull=True) | Q(team_id=team_id)


def holds(delegator, delegate, team_id: int) -> bool:
    """Whether `delegate` may decide for `delegator` in team `team_id` now."""
    return holding().filter(_covering(team_id), delegator=delegator, delegate=delegate).exists()


def delegators_of(delegate, team_id: int) -> list[User]:
    """Who `delegate` decides for in team `team_id` now; read once per user object (a page asks
    for each verdict), as `accounts.access.roles_by_team` does."""
    cache = delegate.__dict__.setdefault("_delegators_by_team", {})
    if team_id not in cache:
        cache[team_id] = [held.delegator for held in holding().filter(_covering(team_id), delegate=delegate)
                          .select_related("delegator")]
    return cache[team_id]


def delegates_of(people: QuerySet, team_id: int) -> QuerySet:
    """Ids of the people deciding now for any of `people` in team `team_id`."""
    return holding().filter(_covering(team_id), delegator__in=people).values("delegate_id")


def held_by(delegate) -> list[Delegation]:
    """The delegations `delegate` decides through now (the inbox adds their delegators' requests)."""
    return list(holding().filter(delegate=delegate).select_related("delegator", "team"))


@dataclass
class InboxDelegations:
    given: list[Delegation]  # "X decides for you until …"
    received: list[Delegation]  # "You decide for Y until …"


def shown_to(user) -> InboxDelegations:
    """What the inbox says about delegations: in force now or still to come, both ways."""
    current = Delegation.objects.filter(ends_at__gt=timezone.now(), ended_at__isnull=True) \
        .select_related("delegator", "delegate", "team")
    return InboxDelegations(given=list(current.filter(delegator=user)), received=list(current.filter(delegate=user)))


def history_of(user) -> QuerySet:
    """Every delegation `user` gave or received, latest first."""
    return Delegation.objects.filter(Q(delegator=user) | Q(delegate=user)) \
        .select_related("delegator", "delegate", "team").order_by("-starts_at", "-pk")


def _overlapping(starts_at, ends_at) -> QuerySet:
    return Delegation.objects.filter(ended_at__isnull=True, starts_at__lt=ends_at, ends_at__gt=starts_at)


def _decides_in(user) -> set[int] | None:
    """Teams where `user` decides something (approves or operates); None: all (platform admin)."""
    approver, operator = team_ids_with_role(user, Role.APPROVER), team_ids_with_role(user, Role.OPERATOR)
    return None if approver is None or operator is None else approver | operator


def _when(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"


@transaction.atomic
def create_delegation(actor, *, delegate: User, starts_at: datetime, ends_at: datetime, team: Team | None = None,
                      note: str = "") -> Delegation:
    """`actor` delegates their decisions to `delegate` from `starts_at` until `ends_at`
    (in `team` only, when given). Audited."""
    now = timezone.now()
    if delegate.pk == actor.pk:
        raise DelegationRefused("Choose a colleague: you cannot delegate to yourself.")
    if not delegate.is_active:
        raise DelegationRefused(f"{delegate.display_name} cannot sign in any more; choose someone else.")
    if ends_at <= starts_at:
        raise DelegationRefused("The end must come after the start.")
    if ends_at <= now:
        raise DelegationRefused("The end is in the past; choose when you are back.")
    if ends_at - starts_at > MAX_PERIOD:
        raise DelegationRefused(f"A delegation lasts at most {MAX_PERIOD.days} days; a platform admin can give "
                                f"{delegate.display_name} the role instead.")
    overlapping = _overlapping(starts_at, ends_at)
    mine = overlapping.filter(delegator=actor).select_related("delegate").first()
    if mine is not None:
        raise DelegationRefused(f"You already delegated to {mine.delegate.display_name} from {_when(mine.starts_at)} "
                                f"until {_when(mine.ends_at)}; end that delegation first, or choose another period.")
    # No chains: a delegation does not pass on, so neither side may be away through one then.
    if overlapping.filter(delegator=delegate).exists():
        raise DelegationRefused(f"{delegate.display_name} has delegated their own decisions for part of this "
                                f"period; choose someone who is in, since delegations do not pass on.")
    held = overlapping.filter(delegate=actor).select_related("delegator").first()
    if held is not None:
        raise DelegationRefused(f"You decide for {held.delegator.display_name} until {_when(held.ends_at)}, and "
                                f"delegations do not pass on: ask them to delegate to someone else first.")
    decides_in, delegate_sees = _decides_in(actor), visible_team_ids(delegate)
    if team is not None:
        if decides_in is not None and team.pk not in decides_in:
            raise DelegationRefused(f"You decide nothing in {team.name}, so there is nothing to delegate there.")
        if delegate_sees is not None and team.pk not in delegate_sees:
            raise DelegationRefused(f"{delegate.display_name} is not a member of {team.name}, so they could not see "
                                    f"its requests; choose a member of the team.")
    elif decides_in is not None and delegate_sees is not None and not decides_in & delegate_sees:
        raise DelegationRefused(f"{delegate.display_name} is in none of the teams where you decide; choose a member "
                                f"of one of them.")
    delegation = Delegation.objects.create(delegator=actor, delegate=delegate, team=team, starts_at=starts_at,
                                           ends_at=ends_at, note=note.strip()[:200])
    record(actor, "delegation.created", delegation, team=team, after=_describe(delegation))
    return delegation


@transaction.atomic
def end_delegation(actor, delegation_id: int) -> Delegation:
    """End a delegation now; its delegator, its delegate or a platform admin may. Audited."""
    delegation = Delegation.objects.select_for_update(of=("self",)).select_related("delegator", "delegate", "team") \
        .get(pk=delegation_id)
    if actor.pk not in (delegation.delegator_id, delegation.delegate_id) and not actor.is_platform_admin:
        raise PermissionDenied("Only the two people it concerns, or a platform admin, can end a delegation.")
    if delegation.ended_at is not None or delegation.ends_at <= timezone.now():
        raise DelegationRefused("This delegation has already ended.")
    delegation.ended_at = timezone.now()
    delegation.save(update_fields=["ended_at"])
    record(actor, "delegation.ended", delegation, team=delegation.team, after=_describe(delegation))
    return delegation


def _describe(delegation: Delegation) -> dict:
    return {"delegator": delegation.delegator.username, "delegate": delegation.delegate.username,
            "team": delegation.team.slug if delegation.team else None, "starts_at": delegation.starts_at,
            "ends_at": delegation.ends_at, "ended_at": delegation.ended_at, "note": delegation.note}
