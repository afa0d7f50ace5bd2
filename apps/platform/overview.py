"""Read-only views across apps for the signed-in person: the home page's panels (approvals
waiting for them, runs needing attention, their teams' recent runs) and the console-wide search
over workflows, runs, incidents and runbooks. Everything is scoped with the owning app's helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.access import scope_to_user
from apps.pagination import KeyPaginator
from apps.runs.models import FINISHED_RUN_STATES, Run, RunState

PANEL_SIZE = 8
# Failed runs older than this no longer count as needing attention on the home page.
RECENT_FAILURE_WINDOW = timedelta(days=7)


def _runs(user) -> QuerySet:
    # Newest first by id: runs are created in time order, and the primary key's index serves
    # this order for any set of teams without sorting the whole history.
    return scope_to_user(Run.objects.select_related("workflow", "team"), user).order_by("-pk")


@dataclass
class HomePanels:
    approvals: list
    attention: list[Run]
    at_risk: list
    recent_runs: list[Run]
    failing: bool  # a checkpoint waits in a team the person sees: the groups panel loads apart


def home_panels(user, now=None) -> HomePanels:
    from apps.approvals.models import ApprovalRequest
    from apps.approvals.services import inbox_for, waiting_checkpoints_for
    from apps.monitoring.models import SlaState, SlaStatus

    now = now or timezone.now()
    inbox = inbox_for(user)
    # Each panel loads only the columns it shows: a whole row costs more to build than to read.
    runs = _runs(user).only("state", "failure_summary", "created_at", "workflow__name", "team__name")
    # Paused runs wait for a decision whatever their age; failures matter while they are recent.
    attention = runs.filter(Q(state=RunState.PAUSED)
                                   | Q(state=RunState.FAILED, created_at__gte=now - RECENT_FAILURE_WINDOW))
    at_risk = scope_to_user(SlaStatus.objects.all(), user).filter(state__in=[SlaState.AT_RISK, SlaState.BREACHED]) \
        .exclude(run__state__in=FINISHED_RUN_STATES).order_by("deadline")
    # The inbox's keys first, then its first rows: PostgreSQL plans the inbox's many-table join
    # far longer than it runs it.
    approvals = KeyPaginator(inbox, PANEL_SIZE, rows=ApprovalRequest.objects.select_related("run__workflow", "step_run")
                             .only("kind", "created_at", "due_at", "run__workflow__name", "step_run__step_id")
                             ).page(1)  # the total is the navigation's inbox count
    # The same for the SLA panel: joining every at-risk status's whole run before keeping eight
    # read thousands of unfinished runs.
    at_risk = KeyPaginator(at_risk, PANEL_SIZE, rows=SlaStatus.objects.select_related("run__workflow")
                           .only("state", "deadline", "predicted_finish", "run__workflow__name")).page(1)
    return HomePanels(
        approvals=approvals.object_list,
        attention=list(attention[:PANEL_SIZE]),
        at_risk=at_risk.object_list,
        recent_runs=list(runs[:PANEL_SIZE]),
        failing=waiting_checkpoints_for(user).exists(),
    )


def home_failure_groups(user) -> list:
    """Home's largest failure groups (apps.incidents.groups). Grouping walks hundreds of waiting
    checkpoints (a platform admin's: ~55 ms), so the panel is a fragment of its own that the page
    loads once it shows, as the checkpoint loads its suggestions, and the groups are kept while
    the same checkpoints wait."""
    from apps.incidents.groups import largest_failure_groups

    return largest_failure_groups(user, PANEL_SIZE)


# --- Search ---------------------------------------------------------------------------------------

SEARCH_KINDS = ("workflows", "runs", "incidents", "runbooks")


def search(user, query: str, kind: str) -> QuerySet:
    """What `user` may see of `kind` matching `query` (words in names, titles, failure text)."""
    query = query.strip()
    if kind == "workflows":
        from apps.workflows.services import workflows_for

        return workflows_for(user, search=query)
    if kind == "runs":
        matches = Q(workflow__name__icontains=query) | Q(failure_summary__icontains=query)
        if query.lstrip("#").isdigit():
            matches |= Q(pk=int(query.lstrip("#")))
        return _runs(user).filter(matches)
    if kind == "incidents":
        from apps.incidents.access import visible_incidents

        return visible_incidents(user).filter(Q(title__icontains=query) | Q(error_message__icontains=query)) \
            .order_by("-last_seen_at", "-pk")
    if kind == "runbooks":
        from apps.knowledge.models import Runbook

        # Runbooks are shared reading for everyone signed in.
        return Runbook.objects.filter(Q(title__icontains=query) | Q(body__icontains=query))
    raise ValueError(f"unknown search kind {kind!r}")
