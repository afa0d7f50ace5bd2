"""Pages of the platform app.

- For platform admins (403 for everyone else): health of the database, broker and beat; the
  workers with their queues, active and reserved tasks, and queue depths; step types; teams,
  people and roles. Connections, the knowledge index and the audit log are linked to the pages
  of the apps that own them.
- For everyone signed in: home (what needs the person now) and the console-wide search.
"""

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.shortcuts import render

from apps.accounts.access import require_platform_admin
from apps.accounts.models import Membership, Team, User
from apps.catalog.registry import all_step_types
from apps.monitoring.broker_queues import known_queues
from apps.platform import health, liveness
from apps.platform.overview import SEARCH_KINDS, home_failure_groups, home_panels, search

PAGE_SIZE = 25
SEARCH_PREVIEW = 5


def _admin_only(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        require_platform_admin(request.user)
        return view(request, *args, **kwargs)

    return login_required(guarded)


# --- Platform admin pages -----------------------------------------------------------------------


@_admin_only
def overview(request):
    return render(request, "platform/overview.html", {
        "checks": health.health_checks(), "step_type_count": len(all_step_types()),
        "team_count": Team.objects.count(), "people_count": User.objects.filter(is_active=True).count(),
    })


@_admin_only
def workers(request):
    """The page opens at once; the report, which waits for workers to answer, loads into it."""
    if not request.htmx:
        return render(request, "platform/workers.html", {"timeout": health.INSPECT_TIMEOUT_SECONDS})
    report = health.worker_report()
    stranded = liveness.queues_without_consumer()
    queues = sorted(set(known_queues()) | set(stranded) | {q for w in report.workers for q in w.queues})
    return render(request, "platform/workers.html#report", {
        "report": report, "depths": health.queue_depths(queues, report.workers), "stranded": stranded,
        "stale_seconds": settings.FLOWDECK_WORKER_STALE_SECONDS,
    })


@_admin_only
def step_types(request):
    page = Paginator(all_step_types(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "platform/step_types.html", {"page": page})


@_admin_only
def people(request):
    teams = Team.objects.annotate(people=Count("memberships__user", distinct=True)).order_by("name")
    users = User.objects.order_by("username").prefetch_related(
        Prefetch("memberships", queryset=Membership.objects.select_related("team")))
    query = request.GET.get("q", "").strip()
    if query:
        users = users.filter(Q(username__icontains=query) | Q(email__icontains=query)
                             | Q(first_name__icontains=query) | Q(last_name__icontains=query))
    return render(request, "platform/people.html", {
        "teams": Paginator(teams, PAGE_SIZE).get_page(request.GET.get("teams_page")),
        "users": Paginator(users, PAGE_SIZE).get_page(request.GET.get("page")), "query": query,
    })


# --- Home and search ----------------------------------------------------------------------------


@login_required
def home(request):
    """What needs the person now: approvals waiting for them, runs needing attention, their
    teams' recent runs, with search across the console (panels from apps.platform.overview)."""
    return render(request, "platform/home.html", {
        "panels": home_panels(request.user),
        # Ordered here: Membership's default order joins the user too.
        "memberships": Membership.objects.filter(user=request.user).select_related("team")
        .order_by("team__name", "role"),
    })


@login_required
def home_failing(request):
    """Home's "failing now" panel, loaded by the page (htmx) once it shows."""
    return render(request, "platform/_home_failing.html", {"groups": home_failure_groups(request.user)})


@login_required
def search_page(request):
    query, kind = request.GET.get("q", "").strip(), request.GET.get("kind", "")
    context = {"query": query, "kind": kind if kind in SEARCH_KINDS else "", "kinds": SEARCH_KINDS}
    if query and context["kind"]:
        context["page"] = Paginator(search(request.user, query, kind), PAGE_SIZE).get_page(request.GET.get("page"))
    elif query:
        context["sections"] = [(name, list(search(request.user, query, name)[:SEARCH_PREVIEW + 1]))
                               for name in SEARCH_KINDS]
    return render(request, "platform/search.html", context | {"preview_size": SEARCH_PREVIEW})
