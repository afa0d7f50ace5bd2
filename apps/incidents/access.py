"""Who sees which incidents.

Team incidents follow the usual rule (`apps.accounts.access`): visible to the team's members,
404 outside it, 403 without the operator role for triage. Imported incidents without a team
are shared history: every signed-in person may read them, only platform admins may change them.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from apps.accounts.access import has_role, visible_team_ids
from apps.accounts.models import Role
from apps.incidents.models import Incident


def visible_incidents(user, queryset: QuerySet | None = None) -> QuerySet:
    queryset = Incident.objects.all() if queryset is None else queryset
    if not user.is_authenticated:
        return queryset.none()
    team_ids = visible_team_ids(user)
    if team_ids is None:
        return queryset
    return queryset.filter(Q(team__in=team_ids) | Q(team__isnull=True))


def may_triage(user, incident: Incident) -> bool:
    if incident.team_id is None:
        return bool(user.is_authenticated and user.is_platform_admin)
    return has_role(user, incident.team_id, Role.OPERATOR)


def get_incident_for_user(user, pk, *, triage: bool = False) -> Incident:
    """Incident `pk` if `user` may see it (else 404); with `triage`, only if they may change it (else 403)."""
    queryset = Incident.objects.select_related("team", "owner", "root_cause_category", "workflow")
    try:
        incident = visible_incidents(user, queryset).get(pk=pk)
    except (Incident.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No incident {pk} in your teams.") from None
    if triage and not may_triage(user, incident):
        if incident.team_id is None:
            raise PermissionDenied("Shared imported history can only be changed by a platform admin.")
        raise PermissionDenied("You need the operator role in this team to triage its incidents.")
    return incident


def incident_of_step_run(step_run_id: int) -> Incident | None:
    """The incident a step run's latest failure joined (its checkpoint shows that incident's
    suggestions); the caller has checked that the person may see the step run."""
    return (Incident.objects.filter(occurrence_log__step_run_id=step_run_id).select_related("workflow")
            .order_by("-occurrence_log__occurred_at", "-pk").first())
